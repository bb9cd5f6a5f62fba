"""`xiaoche broker-config`: a real Mosquitto with the generated password file and ACL."""

import getpass
import shutil
import socket
import subprocess
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from backend.cli import broker_config_command

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None,
                                reason="needs the mosquitto binary (apt-get install mosquitto)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def secured_broker(app, imported, tmp_path):
    port = free_port()
    result = app.test_cli_runner().invoke(
        broker_config_command, ["--out", str(tmp_path / "mq"),
                                "--service-password", "service-secret-1", "--port", str(port)])
    assert result.exit_code == 0, result.output
    conf = tmp_path / "mq" / "mosquitto.conf"
    # loopback only; and as root, mosquitto would drop to user "mosquitto", who cannot read
    # the 0600 files the test user wrote
    conf.write_text(conf.read_text().replace(f"listener {port}", f"listener {port} 127.0.0.1")
                    + f"user {getpass.getuser()}\n")
    process = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=10)
    process.stdout.close()


def connect(port, username, password):
    """Connect with MQTT 5; return (client, reason code of CONNACK)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    done = threading.Event()
    outcome = {}

    def on_connect(_c, _u, _flags, reason_code, _props):
        outcome["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert done.wait(5), "no CONNACK"
    return client, outcome["rc"]


def close(client):
    client.disconnect()
    client.loop_stop()


def test_a_device_with_the_wrong_password_is_refused(secured_broker):
    client, rc = connect(secured_broker, "dev-bus-07", "wrong-password")
    assert rc.is_failure and rc.value in (0x86, 0x87)  # bad user name or password / not authorized
    close(client)


def test_a_device_with_its_token_connects(secured_broker):
    client, rc = connect(secured_broker, "dev-bus-07", "demo-token-bus-07")
    assert not rc.is_failure
    close(client)


def test_device_a_cannot_publish_on_device_bs_topic(secured_broker):
    service, rc = connect(secured_broker, "xiaoche-service", "service-secret-1")
    assert not rc.is_failure
    received = []
    subscribed = threading.Event()
    service.on_message = lambda _c, _u, msg: received.append(msg.topic)
    service.on_subscribe = lambda *_: subscribed.set()
    service.subscribe("xiaoche/v1/devices/#", qos=1)
    assert subscribed.wait(5)

    device, _ = connect(secured_broker, "dev-bus-07", "demo-token-bus-07")
    own = device.publish("xiaoche/v1/devices/dev-bus-07/pings", b"{}", qos=1)
    other = device.publish("xiaoche/v1/devices/dev-bus-12/pings", b"{}", qos=1)
    own.wait_for_publish(5)
    other.wait_for_publish(5)
    deadline = time.time() + 3
    while time.time() < deadline and len(received) < 1:
        time.sleep(0.05)
    time.sleep(0.3)
    assert received == ["xiaoche/v1/devices/dev-bus-07/pings"]
    close(device)
    close(service)
