"""Every setting the service reads is in the README's configuration table."""

from pathlib import Path

from backend.settings import SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_xiaoche_variable_has_a_row_in_the_readme():
    missing = [s.env for s in SETTINGS if f"| `{s.env}`" not in README]
    assert missing == []
