"""docs/openapi.json is the API as the code describes it: regenerated, it comes out the same."""

import json
from pathlib import Path

from backend import create_app
from backend.extensions import api

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE = "xiaoche openapi write --format json docs/openapi.json"


def test_the_committed_openapi_document_is_what_the_code_generates(tmp_path):
    app = create_app({"TESTING": True,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    with app.app_context():
        generated = json.loads(json.dumps(api.spec.to_dict()))
    committed = json.loads(DOC.read_text(encoding="utf-8"))
    changed = sorted(set(generated["paths"]) ^ set(committed["paths"]))
    assert generated == committed, (
        f"docs/openapi.json is stale (paths only on one side: {changed}); run `{REGENERATE}`")


def first_code_block(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index("```sh\n") + len("```sh\n")
    return text[start:text.index("```", start)]


def test_both_readmes_start_with_the_same_two_commands():
    root = DOC.parents[1]
    english, chinese = first_code_block(root / "README.md"), first_code_block(root / "README.zh-CN.md")
    assert english == chinese and len(english.strip().splitlines()) == 2
    assert (root / "README.md").read_text(encoding="utf-8").index("```sh") < 40
