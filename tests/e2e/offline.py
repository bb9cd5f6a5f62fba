"""A browser tab that may reach loopback only: every other request is refused and recorded, so a
test can assert that a page works on an intranet without internet (and tried nothing else)."""

from __future__ import annotations

from urllib.parse import urlsplit

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def loopback_only(page) -> list[str]:
    """Refuse every non-loopback request of ``page``; the list fills with their URLs."""
    attempted: list[str] = []

    def handle(route) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about") or parts.hostname in LOOPBACK:
            route.continue_()
        else:
            attempted.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", handle)
    return attempted
