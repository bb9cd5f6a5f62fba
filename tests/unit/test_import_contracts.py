"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, and they would catch a
forbidden import: gps_ingest never imports backend or notifications, routing nothing of ours,
notifications neither gps_ingest nor backend."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = str(Path(sys.executable).with_name("lint-imports"))


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the packages under ``tree`` with its pyproject.toml's contracts."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([LINT, "--config", str(tree / "pyproject.toml"), "--no-cache"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def test_the_contracts_are_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A copy of gps_ingest, routing and notifications (and a stand-in backend) with the
    contracts."""
    for package in ("gps_ingest", "routing", "notifications"):
        shutil.copytree(ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "backend" / "models").mkdir(parents=True)
    (tmp_path / "backend" / "__init__.py").write_text("")
    (tmp_path / "backend" / "models" / "__init__.py").write_text("")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint(tmp_path).returncode == 0
    return tmp_path


@pytest.mark.parametrize(("module", "line", "chain"), [
    ("gps_ingest/sneaky.py", "from backend.models import Ping\n", "gps_ingest.sneaky -> backend"),
    ("gps_ingest/jt808/sneaky.py", "def later():\n    import notifications\n",
     "gps_ingest.jt808.sneaky -> notifications"),
    ("routing/sneaky.py", "from gps_ingest import records\n", "routing.sneaky -> gps_ingest"),
    ("notifications/sneaky.py", "from gps_ingest.mqtt_common import parse_mqtt_url\n",
     "notifications.sneaky -> gps_ingest"),
    ("notifications/channels/sneaky.py", "def later():\n    import backend.models\n",
     "notifications.channels.sneaky -> backend"),
])
def test_a_forbidden_import_breaks_the_contract(tree: Path, module: str, line: str, chain: str):
    (tree / module).write_text(line)
    result = lint(tree)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout and chain in result.stdout
