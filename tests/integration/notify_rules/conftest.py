"""The loopback webhook receiver of the dispatcher's tests, for the end-to-end timeline."""

from tests.integration.notifications.conftest import (  # noqa: F401  (fixtures)
    webhook_app,
    webhook_server,
)
