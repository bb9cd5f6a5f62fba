"""The district an install serves: one county per install, its timezone counts local dates."""

from __future__ import annotations

from sqlalchemy import select

from backend.extensions import db
from backend.models import District

DEFAULT_TIMEZONE = "Asia/Shanghai"


def district_timezone() -> str:
    """The timezone local dates are counted in (the first district's; one county per install)."""
    name = db.session.scalars(select(District.timezone).order_by(District.id)).first()
    return name or DEFAULT_TIMEZONE
