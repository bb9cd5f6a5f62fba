"""docker/compose.yaml as a real compose implementation reads it (Debian's `docker-compose`,
`config` needs no daemon): valid, with the order and the checks docker/README.md describes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

COMPOSE = Path(__file__).resolve().parents[2] / "docker" / "compose.yaml"
SECRETS = {"XIAOCHE_SECRET_KEY": "k", "XIAOCHE_DB_PASSWORD": "p", "XIAOCHE_MQTT_PASSWORD": "m"}

pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                reason="needs docker-compose (apt-get install docker-compose)")


def config(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("XIAOCHE_", "COMPOSE_"))}
    return subprocess.run(["docker-compose", "-f", str(COMPOSE), "config"],
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def services() -> dict:
    done = config(**SECRETS)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


def test_the_secrets_are_required():
    done = config()
    assert done.returncode != 0 and "set it" in done.stderr


def test_every_service_waits_for_the_one_shot_migration(services):
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "ingest", "scheduler", "jt808", "import", "broker-config"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_each_role_has_a_health_check_of_its_own(services):
    for role in ("api", "ingest", "scheduler", "jt808"):
        assert services[role]["healthcheck"]["test"] == ["CMD", "xiaoche", "healthcheck", role]
    for one_shot in ("migrate", "import", "broker-config"):
        # `disable: true`, which docker-compose 1.29 prints as the equivalent test NONE
        assert services[one_shot]["healthcheck"] in ({"disable": True},
                                                     {"test": ["NONE"]}), one_shot


def test_the_broker_sees_container_paths_written_for_its_user(services):
    step = services["broker-config"]
    assert step["command"] == ["broker-config", "--for-compose", "--out", "/out"]
    assert step["user"] == "root" and "setup" in step["profiles"]
    mounts = {v.split(":")[1] for v in map(volume, step["volumes"])}
    assert {"/out", "/certs"} <= mounts
    broker_mounts = [volume(v) for v in services["mosquitto"]["volumes"]]
    assert any(v.endswith(":/mosquitto/config:ro") and v.split(":")[0].endswith("/mosquitto")
               for v in broker_mounts)
    assert any(v.startswith("mqttdata:/mosquitto/data") for v in broker_mounts)
    published = {str(p.get("target") if isinstance(p, dict) else p).split(":")[-1]
                 for p in services["mosquitto"]["ports"]}
    assert {"8883", "1883"} <= published


def test_the_import_step_reads_a_mounted_bundle(services):
    step = services["import"]
    assert step["command"] == ["import", "/bundle/district.json"]
    assert "setup" in step["profiles"]
    assert any(volume(v).endswith(":/bundle/district.json:ro") for v in step["volumes"])


def volume(entry) -> str:
    """A volume as SOURCE:TARGET[:ro], whichever syntax the implementation prints."""
    if isinstance(entry, str):
        return entry
    text = f"{entry['source']}:{entry['target']}"
    return text + (":ro" if entry.get("read_only") else "")


def test_ingest_replicas_take_slots_of_the_shared_group_instead_of_fixed_client_ids(services):
    """A fixed client id takes no slot, so a replica that dies for good would strand its share
    of the stream; with none set each takes a slot and the survivors adopt a dead one's
    (issue 17, backend/ingest/member.py)."""
    env = services["ingest"]["environment"]
    assert "XIAOCHE_INGEST_CLIENT_ID" not in env
    assert env["XIAOCHE_INGEST_SHARED_GROUP"] == "xiaoche"


def test_the_jt808_gateway_listens_on_a_published_port(services):
    gateway = services["jt808"]
    assert gateway["command"] == ["jt808", "--port", "7808"]
    assert gateway["image"] == services["api"]["image"]  # the same image, another role
    published = [p if isinstance(p, dict) else {"published": p.split(":")[0],
                                                "target": p.split(":")[-1]}
                 for p in gateway["ports"]]
    assert [(str(p["published"]), str(p["target"])) for p in published] == [("7808", "7808")]
