"""The MQTT channel's broker comes from the backend, which parses XIAOCHE_MQTT_URL with the
device edge's parser (the only MQTT URL parser): notifications itself never imports gps_ingest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from backend.dispatch_service import channel_config
from gps_ingest.mqtt_common import new_client
from notifications.channels import ChannelConfigError, channels_from_config
from notifications.channels.mqtt import Broker, MqttChannel

NOTIFICATIONS = Path(__file__).resolve().parents[3] / "notifications"


def test_the_backend_hands_the_channel_the_parsed_broker():
    config = channel_config({"MQTT_URL": "mqtts://push:s%40cret@broker.example:8884",
                             "PUSH_TIMEOUT_S": 3})
    assert config["MQTT_BROKER"] == ("broker.example", 8884, "push", "s@cret", True)
    channel = channels_from_config({**config, "WEBHOOK_URL": None})["mqtt"]
    assert isinstance(channel, MqttChannel)  # made, not connected: that is on the first send
    assert (channel.host, channel.port, channel._username, channel._password, channel._tls,
            channel.timeout_s) == ("broker.example", 8884, "push", "s@cret", True, 3.0)
    assert channel._new_client is new_client  # the project's one way to build a paho client
    channel.close()


def test_a_broker_without_the_client_factory_is_a_config_error():
    config = dict(channel_config({"MQTT_URL": "mqtt://127.0.0.1:1883"}))
    del config["MQTT_CLIENT_FACTORY"]
    with pytest.raises(ChannelConfigError, match="MQTT_CLIENT_FACTORY"):
        channels_from_config(config)


def test_no_mqtt_url_no_mqtt_channel_and_a_bad_one_is_a_config_error():
    assert "MQTT_BROKER" not in channel_config({"MQTT_URL": None})
    assert "mqtt" not in channels_from_config(channel_config({"MQTT_URL": ""}))
    with pytest.raises(ChannelConfigError, match="XIAOCHE_MQTT_URL: MQTT URL must start"):
        channel_config({"MQTT_URL": "http://127.0.0.1"})
    with pytest.raises(ChannelConfigError, match="XIAOCHE_MQTT_URL: MQTT URL has no host"):
        channel_config({"MQTT_URL": "mqtt://"})


def test_a_broker_is_the_five_fields_of_a_parsed_url():
    assert Broker("h", 1883, None, None, False) == ("h", 1883, None, None, False)


def test_notifications_imports_nothing_of_gps_ingest():
    imported = set()
    for path in NOTIFICATIONS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add((path.name, node.module.split(".")[0]))
            elif isinstance(node, ast.Import):
                imported.update((path.name, a.name.split(".")[0]) for a in node.names)
    assert [p for p, top in sorted(imported) if top == "gps_ingest"] == []
