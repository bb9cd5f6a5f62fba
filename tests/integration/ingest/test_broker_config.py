"""`xiaoche broker-config`: the real Mosquitto started on the generated files, unchanged.

Run as root (CI), Mosquitto drops to its own user before it reads the password file and the ACL,
which is what the files' owner and mode must allow; run as another user, it runs as that user.
The files live under a world-traversable temporary folder (pytest's own is 0700, which the
dropped broker could not enter).
"""

import os
import pwd
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from backend.broker_config import blocking_ancestor
from backend.cli import broker_config_command

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None,
                                reason="needs the mosquitto binary (apt-get install mosquitto)")

SERVICE_PASSWORD = "service-secret-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_user() -> pwd.struct_passwd:
    """Who Mosquitto runs as: `mosquitto` when started as root, else whoever starts it."""
    if os.geteuid() == 0:
        return pwd.getpwnam("mosquitto")
    return pwd.getpwuid(os.geteuid())


@pytest.fixture
def base():
    folder = Path(tempfile.mkdtemp(prefix="xiaoche-broker-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def generate(app, out: Path, *args: str):
    return app.test_cli_runner().invoke(
        broker_config_command,
        ["--out", str(out), "--service-password", SERVICE_PASSWORD, *args])


class Broker:
    """`mosquitto -c CONF`, waited for until every port answers."""

    def __init__(self, conf: Path, ports: list[int]):
        self.conf = conf
        self.ports = ports
        self.log = conf.parent.parent / f"mosquitto-{uuid.uuid4().hex[:6]}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Broker":
        with open(self.log, "ab") as handle:
            self.process = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stdout=handle,
                                            stderr=subprocess.STDOUT)
        deadline = time.time() + 10
        for port in self.ports:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if self.process.poll() is not None or time.time() > deadline:
                        raise AssertionError(f"mosquitto did not come up (exit "
                                             f"{self.process.poll()}):\n{self.output()}") from None
                    time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def secured_broker(app, imported, base):
    port = free_port()
    result = generate(app, base / "mq", "--bind", "127.0.0.1", "--port", str(port))
    assert result.exit_code == 0, result.output + result.stderr
    broker = Broker(base / "mq" / "mosquitto.conf", [port]).start()
    yield broker
    broker.stop()


def connect(port, username, password, *, tls_ca: Path | None = None, client_id=None,
            session_expiry_s: int | None = None, on_message=None):
    """Connect with MQTT 5; return (client, reason code of CONNACK). ``on_message`` is set
    before connecting: a resumed session's queue arrives right after the CONNACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2,
                         client_id=client_id or f"t-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.username_pw_set(username, password)
    if tls_ca is not None:
        client.tls_set(ca_certs=str(tls_ca))
    done = threading.Event()
    outcome = {}

    def on_connect(_c, _u, _flags, reason_code, _props):
        outcome["rc"] = reason_code
        done.set()

    client.on_connect = on_connect
    properties = None
    if session_expiry_s is not None:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = session_expiry_s
    client.connect("127.0.0.1", port, clean_start=session_expiry_s is None,
                   properties=properties)
    client.loop_start()
    assert done.wait(5), "no CONNACK"
    return client, outcome["rc"]


def close(client):
    client.disconnect()
    client.loop_stop()


def subscribe(client, topic) -> list:
    received = []
    subscribed = threading.Event()
    client.on_message = lambda _c, _u, msg: received.append((msg.topic, msg.payload))
    client.on_subscribe = lambda *_: subscribed.set()
    client.subscribe(topic, qos=1)
    assert subscribed.wait(5)
    return received


def test_the_secrets_belong_to_the_broker_user_and_nobody_else(secured_broker):
    folder = secured_broker.conf.parent
    user = broker_user()
    for name in ("passwd", "acl"):
        st = (folder / name).stat()
        assert stat.S_IMODE(st.st_mode) == 0o600, name
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), name
    data = folder / "data"
    assert data.is_dir() and data.stat().st_uid == user.pw_uid
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    conf = secured_broker.conf.read_text()
    assert f"listener {secured_broker.ports[0]} 127.0.0.1" in conf
    assert f"password_file {folder.resolve()}/passwd" in conf


def test_mosquitto_runs_as_its_own_user_and_reads_the_files(secured_broker):
    with open(f"/proc/{secured_broker.process.pid}/status") as handle:
        uids = next(line for line in handle if line.startswith("Uid:")).split()[1:]
    assert int(uids[1]) == broker_user().pw_uid  # effective uid: root dropped to `mosquitto`
    client, rc = connect(secured_broker.ports[0], "dev-bus-07", "demo-token-bus-07")
    assert not rc.is_failure, secured_broker.output()
    close(client)


def test_a_device_with_the_wrong_password_is_refused(secured_broker):
    client, rc = connect(secured_broker.ports[0], "dev-bus-07", "wrong-password")
    assert rc.is_failure and rc.value in (0x86, 0x87)  # bad user name or password / not authorized
    close(client)


def test_device_a_cannot_publish_on_device_bs_topic(secured_broker):
    port = secured_broker.ports[0]
    service, rc = connect(port, "xiaoche-service", SERVICE_PASSWORD)
    assert not rc.is_failure
    received = subscribe(service, "xiaoche/v1/devices/#")

    device, _ = connect(port, "dev-bus-07", "demo-token-bus-07")
    own = device.publish("xiaoche/v1/devices/dev-bus-07/pings", b"{}", qos=1)
    other = device.publish("xiaoche/v1/devices/dev-bus-12/pings", b"{}", qos=1)
    own.wait_for_publish(5)
    other.wait_for_publish(5)
    deadline = time.time() + 3
    while time.time() < deadline and len(received) < 1:
        time.sleep(0.05)
    time.sleep(0.3)
    assert [topic for topic, _ in received] == ["xiaoche/v1/devices/dev-bus-07/pings"]
    close(device)
    close(service)


def test_the_broker_writes_its_persistence_folder_on_a_clean_stop(secured_broker):
    store = secured_broker.conf.parent / "data" / "mosquitto.db"
    secured_broker.stop()
    assert secured_broker.process.returncode == 0, secured_broker.output()
    assert store.is_file() and store.stat().st_uid == broker_user().pw_uid
    assert "Error saving" not in secured_broker.output()


def test_an_acknowledged_ping_survives_a_broker_crash_after_the_autosave(secured_broker):
    """The ingest away (its session queued on the broker), a device's QoS 1 ping acknowledged,
    then kill -9 of the broker: with `autosave_interval 1` it is on disk and delivered after the
    restart (Mosquitto's default, 30 minutes, loses it)."""
    port = secured_broker.ports[0]
    ingest_id = f"ingest-{uuid.uuid4().hex[:6]}"
    service, _ = connect(port, "xiaoche-service", SERVICE_PASSWORD, client_id=ingest_id,
                         session_expiry_s=600)
    subscribe(service, "xiaoche/v1/devices/+/pings")
    close(service)
    store = secured_broker.conf.parent / "data" / "mosquitto.db"
    device, _ = connect(port, "dev-bus-07", "demo-token-bus-07")
    device.publish("xiaoche/v1/devices/dev-bus-07/pings", b'{"n": 1}', qos=1).wait_for_publish(5)
    acknowledged = time.time()
    close(device)
    # the autosave (every 1 s, on the broker's loop tick): wait for a save after the PUBACK,
    # bounded, rather than a fixed sleep a loaded machine can outrun
    deadline = acknowledged + 15
    while not (store.exists() and store.stat().st_mtime > acknowledged + 0.05):
        assert time.time() < deadline, "the broker never saved after the ping was acknowledged"
        time.sleep(0.1)
    time.sleep(0.2)  # the save's rename is done
    secured_broker.stop(signal.SIGKILL)
    secured_broker.start()
    received = []
    service, rc = connect(port, "xiaoche-service", SERVICE_PASSWORD, client_id=ingest_id,
                          session_expiry_s=600,
                          on_message=lambda _c, _u, msg: received.append(msg.payload))
    deadline = time.time() + 5
    while time.time() < deadline and not received:
        time.sleep(0.05)
    close(service)
    assert received == [b'{"n": 1}'], secured_broker.output()


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl binary")
def test_tls_listener_logs_devices_and_the_service_in(app, imported, base):
    cert, key = self_signed(base)
    key.chmod(0o600)  # as a real key would be: broker-config copies it for the broker
    tls_port, plain_port = free_port(), free_port()
    result = generate(app, base / "mq", "--bind", "127.0.0.1", "--certfile", str(cert),
                      "--keyfile", str(key), "--tls-port", str(tls_port), "--no-plain",
                      "--port", str(plain_port))
    assert result.exit_code == 0, result.output + result.stderr
    copied = base / "mq" / "server.key"
    assert stat.S_IMODE(copied.stat().st_mode) == 0o600
    assert copied.stat().st_uid == broker_user().pw_uid
    broker = Broker(base / "mq" / "mosquitto.conf", [tls_port]).start()
    try:
        device, rc = connect(tls_port, "dev-bus-07", "demo-token-bus-07", tls_ca=cert)
        assert not rc.is_failure, broker.output()
        close(device)
        service, rc = connect(tls_port, "xiaoche-service", SERVICE_PASSWORD, tls_ca=cert)
        assert not rc.is_failure
        close(service)
        wrong, rc = connect(tls_port, "dev-bus-07", "wrong-password", tls_ca=cert)
        assert rc.is_failure
        close(wrong)
        # it is TLS for real: a client trusting only the system's CAs refuses this certificate
        with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw, \
                pytest.raises(ssl.SSLCertVerificationError):
            ssl.create_default_context().wrap_socket(raw, server_hostname="127.0.0.1")
        with pytest.raises(ConnectionRefusedError):  # --no-plain: no listener without TLS
            socket.create_connection(("127.0.0.1", plain_port), timeout=1)
    finally:
        broker.stop()


def test_tls_files_are_checked_before_anything_is_written(app, imported, base):
    missing = generate(app, base / "mq", "--certfile", str(base / "nope.pem"),
                       "--keyfile", str(base / "nope.key"))
    assert missing.exit_code != 0 and "no such file" in missing.stderr
    assert not (base / "mq" / "passwd").exists()
    (base / "cert.pem").write_text("not a certificate\n")
    (base / "key.pem").write_text("not a key\n")
    garbage = generate(app, base / "mq", "--certfile", str(base / "cert.pem"),
                       "--keyfile", str(base / "key.pem"))
    assert garbage.exit_code != 0 and "not a PEM certificate" in garbage.stderr
    half = generate(app, base / "mq", "--certfile", str(base / "cert.pem"))
    assert half.exit_code != 0 and "both --certfile and --keyfile" in half.stderr
    nothing = generate(app, base / "mq", "--no-plain")
    assert nothing.exit_code != 0 and "no listener" in nothing.stderr


def test_for_compose_writes_the_containers_paths_for_the_images_user(app, imported, base):
    result = generate(app, base / "mq", "--for-compose")
    assert result.exit_code == 0, result.output + result.stderr
    conf = (base / "mq" / "mosquitto.conf").read_text()
    assert "password_file /mosquitto/config/passwd" in conf
    assert "acl_file /mosquitto/config/acl" in conf
    assert "persistence_location /mosquitto/data/" in conf
    assert "listener 1883 0.0.0.0" in conf
    assert str(base) not in conf
    assert not (base / "mq" / "data").exists()  # the broker's volume, not this machine's folder
    if os.geteuid() == 0:
        st = (base / "mq" / "passwd").stat()
        assert (st.st_uid, st.st_gid) == (1883, 1883)


def test_a_folder_the_broker_cannot_enter_is_named(base):
    """pytest's own temporary folders are 0700: the broker, dropped to its user, could not
    enter them; broker-config says which folder is in the way."""
    (base / "private" / "mq").mkdir(parents=True)
    (base / "private").chmod(0o700)
    nobody = pwd.getpwnam("nobody")
    assert blocking_ancestor((base / "private" / "mq"), nobody.pw_uid, nobody.pw_gid) \
        == base / "private"
    assert blocking_ancestor(base, nobody.pw_uid, nobody.pw_gid) is None
