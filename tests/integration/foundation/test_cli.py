"""The `xiaoche` command as a newcomer meets it: its own commands in --help, and errors that
say what to do instead of tracebacks."""

import os
import socket
import subprocess
import sys

import pytest

OWN_COMMANDS = {"api", "audit", "broker-config", "demo", "dispatch", "healthcheck", "import",
                "import-gtfs", "ingest", "jt808", "migrate", "replay", "report", "scheduler", "serve"}


def xiaoche(*args, tmp_path, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("XIAOCHE_")}
    clean.update(XIAOCHE_INSTANCE_PATH=str(tmp_path / "instance"), **env)
    return subprocess.run([sys.executable, "-m", "backend.cli", *args], env=clean,
                          capture_output=True, text=True, timeout=120)


def listed_commands(help_text: str) -> set[str]:
    lines = help_text.split("Commands:\n", 1)[1].splitlines()
    return {line.split()[0] for line in lines if line.startswith("  ") and line.strip()}


def test_help_lists_xiaoches_own_commands_and_none_of_flasks_options(tmp_path):
    done = xiaoche("--help", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert listed_commands(done.stdout) >= OWN_COMMANDS
    assert not listed_commands(done.stdout) & {"db", "limiter", "openapi", "routes", "shell"}
    for flask_option in ("--app", "--env-file", "--debug"):
        assert flask_option not in done.stdout


def test_the_extensions_commands_still_run_when_named(tmp_path):
    done = xiaoche("db", "--help", tmp_path=tmp_path)
    assert done.returncode == 0 and "upgrade" in done.stdout


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("url, says", [
    (f"postgresql://nobody:secret-pw@127.0.0.1:{closed_port()}/x", "cannot use the database"),
    ("foo://x", "is not a database URL"),
    ("nonsense", "is not a database URL"),
])
def test_a_database_it_cannot_use_is_a_message_saying_what_to_check(tmp_path, url, says):
    done = xiaoche("audit", "--date", "2026-09-01", tmp_path=tmp_path, XIAOCHE_DATABASE_URL=url)
    assert done.returncode == 1
    assert says in done.stderr and "XIAOCHE_DATABASE_URL" in done.stderr
    assert "Traceback" not in done.stderr and "secret-pw" not in done.stderr
