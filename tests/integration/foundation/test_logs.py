"""Logs an operator can follow: each HTTP request's id in the response and on every record
logged while it is handled, text or JSON lines (XIAOCHE_LOG_FORMAT). Run in a process of its
own: pytest keeps the root logger for itself, as any host that configures logging does."""

import json
import os
import subprocess
import sys

SCRIPT = """
import logging
from backend import create_app
app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
@app.get("/x")
def x():
    logging.getLogger("xiaoche.test").warning("inside")
    return "ok"
client = app.test_client()
print("given", client.get("/x", headers={"X-Request-ID": "proxy-req-0001"}).headers["X-Request-ID"])
print("made", client.get("/x", headers={"X-Request-ID": "not a plausible id"}).headers["X-Request-ID"])
logging.getLogger("xiaoche.test").warning("outside")
"""


def run(fmt: str, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("XIAOCHE_")}
    env.update(XIAOCHE_LOG_FORMAT=fmt, XIAOCHE_INSTANCE_PATH=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    ids = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    return ids, [line for line in done.stderr.splitlines() if "side" in line]


def test_json_lines_carry_each_requests_id_and_the_response_echoes_it(tmp_path):
    ids, lines = run("json", tmp_path)
    assert ids["given"] == "proxy-req-0001"
    assert len(ids["made"]) == 32 and ids["made"] != ids["given"]  # an implausible one replaced
    records = [json.loads(line) for line in lines]
    assert [(r["message"], r["request_id"]) for r in records] == [
        ("inside", "proxy-req-0001"), ("inside", ids["made"]), ("outside", "-")]
    assert {"time", "level", "logger"} <= set(records[0])


def test_text_lines_carry_the_request_id_in_brackets(tmp_path):
    ids, lines = run("text", tmp_path)
    assert "WARNING xiaoche.test [proxy-req-0001]: inside" in lines[0]
    assert lines[-1].endswith("[-]: outside")
