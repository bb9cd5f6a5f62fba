"""Channel names → factories, so a district can add a channel without touching the dispatcher.

A factory takes the application's configuration (a mapping of the ``XIAOCHE_*`` settings' Flask
keys) and returns a :class:`~notifications.channels.base.Channel`, or ``None`` when the channel
is not configured (no webhook URL, no broker): the dispatcher then plans no delivery on it. It
raises :class:`~notifications.channels.base.ChannelConfigError` for a half-made configuration.

Adding a channel, e.g. an SMS gateway, either in code run before the dispatcher starts::

    from notifications.channels import register
    register("sms", lambda config: SmsChannel(config["SMS_URL"]) if config.get("SMS_URL") else None)

or from an installed package, with an entry point in the group ``xiaoche.channels``
(``sms = county_sms.channel:factory``). Users choose channels by name in their preferences.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any

from notifications.channels.base import Channel, ChannelConfigError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "xiaoche.channels"

Factory = Callable[[Mapping[str, Any]], Channel | None]

_FACTORIES: dict[str, Factory] = {}


def register(name: str, factory: Factory) -> None:
    """Make channel ``name`` available; registering a name again replaces its factory."""
    if not name or name == "app":
        raise ValueError("'app' is the in-app list and /stream, read from the database; "
                         "a channel needs another, non-empty name")
    _FACTORIES[name] = factory


def unregister(name: str) -> None:
    _FACTORIES.pop(name, None)


def registered() -> tuple[str, ...]:
    _load_entry_points()
    return tuple(_FACTORIES)


def channels_from_config(config: Mapping[str, Any]) -> dict[str, Channel]:
    """Every registered channel that ``config`` configures, by name.

    Raises
    ------
    ChannelConfigError
        When a channel is configured only in part (a webhook URL without its secret).
    """
    _load_entry_points()
    channels: dict[str, Channel] = {}
    try:
        for name, factory in _FACTORIES.items():
            channel = factory(config)
            if channel is not None:
                channels[name] = channel
    except Exception:
        for channel in channels.values():
            channel.close()
        raise
    return channels


_entry_points_loaded = False


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _FACTORIES:
            continue  # registered in code: that wins
        try:
            register(ep.name, ep.load())
        except Exception as exc:  # a broken plug-in must not stop the built-in channels
            log.error("channel %s from entry point %s did not load: %s", ep.name, ep.value, exc)


def _mqtt(config: Mapping[str, Any]) -> Channel | None:
    # the broker of XIAOCHE_MQTT_URL, parsed by the backend that wires the channels (one MQTT
    # URL parser in the project, the device edge's): (host, port, username, password, tls)
    broker = config.get("MQTT_BROKER")
    if not broker:
        return None
    from notifications.channels.mqtt import Broker, MqttChannel

    factory = config.get("MQTT_CLIENT_FACTORY")  # the project's one way to build a paho client
    if factory is None:
        raise ChannelConfigError("MQTT_BROKER is set but MQTT_CLIENT_FACTORY is not: the "
                                 "backend hands both over (backend.dispatch_service)")
    return MqttChannel(Broker(*broker), factory,
                       timeout_s=float(config.get("PUSH_TIMEOUT_S") or 10.0))


def _webhook(config: Mapping[str, Any]) -> Channel | None:
    url = config.get("WEBHOOK_URL")
    if not url:
        return None
    from notifications.channels.webhook import WebhookChannel

    return WebhookChannel(url, config.get("WEBHOOK_SECRET") or "",
                          timeout_s=float(config.get("PUSH_TIMEOUT_S") or 10.0))


register("mqtt", _mqtt)
register("webhook", _webhook)
