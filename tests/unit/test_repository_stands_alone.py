"""A clone with nothing beside it installs, runs and passes its tests: no code, test, benchmark
or document of the repository reads or links a path outside it (the team's shared data folder
beside the checkout, the tool library)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the folders beside a checkout that a clone does not have, spelled so this file is no hit itself
BESIDE = ("shared", ".library")
OUTSIDE = re.compile("|".join(rf"\.\./{re.escape(name)}\b|/work/{re.escape(name)}\b"
                              for name in BESIDE))
CHECKED = ("backend", "gps_ingest", "routing", "notifications", "tests", "bench", "docker",
           "docs", ".ci")


def files():
    yield from ROOT.glob("*.md")
    yield ROOT / "pyproject.toml"
    for folder in CHECKED:
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".md", ".toml", ".yaml", ".yml", ".cfg",
                                                  ".html", ".js", ".json", ""}:
                yield path


def test_nothing_in_the_repository_reads_or_links_outside_it():
    me = Path(__file__).resolve()
    offenders = []
    for path in files():
        if path.resolve() == me or path.stat().st_size > 5_000_000:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        offenders += [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
                      for n, line in enumerate(text.splitlines(), 1) if OUTSIDE.search(line)]
    assert not offenders, "\n".join(offenders)


def test_every_test_data_set_names_its_source_and_licence():
    data = ROOT / "tests" / "data"
    for folder in (p for p in data.iterdir() if p.is_dir()):
        texts = " ".join(p.read_text(encoding="utf-8", errors="replace")
                         for p in folder.iterdir() if p.name.upper().startswith(("README",
                                                                                  "LICEN")))
        assert re.search(r"[Ll]icen[cs]e", texts) and "ource" in texts, folder.name
