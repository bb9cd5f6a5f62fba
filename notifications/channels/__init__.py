"""Where pushed notifications go: one :class:`~notifications.channels.base.Channel` per way out.

``base`` (the protocol and :class:`DeliveryError`), ``registry`` (name → factory; the built-ins
and any a district adds), ``mqtt`` (QoS 1 publish to the user's topic), ``webhook`` (signed HTTP
POST, and :func:`~notifications.channels.webhook.verify` for receivers). The dispatcher
(``backend.dispatch_service``) decides what is sent when; channels only send one item.
"""

from notifications.channels.base import Channel, ChannelConfigError, DeliveryError
from notifications.channels.registry import channels_from_config, register, registered

__all__ = ["Channel", "ChannelConfigError", "DeliveryError", "channels_from_config", "register",
           "registered"]
