"""A substitute bus for a route on one local date (``PUT/GET/DELETE /routes/<id>/vehicle``).

The use cases behind the views: which service date is meant, who drives the route that day,
setting and cancelling a substitute (validated, written and committed here; the live views'
caches are cleared so parents follow the new bus at once, and other ingest processes pick the
change up with their contexts, within a minute). Who may ask about which route is the view's.
"""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select

from backend.errors import ApiError, not_found
from backend.extensions import db
from backend.live_service import clear_caches, clock
from backend.models import Route, RouteSubstitution, Vehicle, vehicle_routes
from backend.tracking_service import district_calendar
from routing.calendar import local_date


def service_date(route: Route, date: dt.date | None) -> dt.date:
    """The local date meant (``None``: today in the district); a past date is a 422."""
    calendar = district_calendar(db.session.connection(), route.district_id)
    today = local_date(clock(), calendar)
    if date is None:
        return today
    if date < today:
        raise ApiError(422, "a substitute bus is set for today or a later date",
                       errors={"date": ["in the past"]})
    return date


def substitute_on(route: Route, date: dt.date) -> RouteSubstitution | None:
    """The route's substitute bus of that date, if one is set."""
    return db.session.get(RouteSubstitution, (route.id, date.isoformat()))


def route_vehicles(route: Route) -> list[Vehicle]:
    """The vehicles that list the route (who drives it without a substitute), by id."""
    ids = db.session.scalars(select(vehicle_routes.c.vehicle_id)
                             .where(vehicle_routes.c.route_id == route.id)).all()
    return [db.session.get(Vehicle, i) for i in sorted(ids)]


def set_substitute(route: Route, date: dt.date, vehicle_id: str,
                   set_by: str) -> RouteSubstitution:
    """Make ``vehicle_id`` (a school bus of the route's district) drive the route on ``date``,
    replacing any substitute set before; committed. A wrong vehicle is a 422."""
    vehicle = db.session.get(Vehicle, vehicle_id)
    if vehicle is None or vehicle.district_id != route.district_id:
        raise ApiError(422, f"no vehicle {vehicle_id!r} in this district",
                       errors={"vehicle_id": ["unknown vehicle"]})
    if vehicle.kind != "school_bus":
        raise ApiError(422, f"{vehicle.id} is a {vehicle.kind}, not a school bus",
                       errors={"vehicle_id": ["not a school bus"]})
    row = substitute_on(route, date)
    if row is None:
        row = RouteSubstitution(route_id=route.id, service_date=date.isoformat())
        db.session.add(row)
    row.vehicle_id, row.set_by, row.set_at = vehicle.id, set_by, time.time()
    db.session.commit()
    clear_caches()
    return row


def cancel_substitute(route: Route, date: dt.date) -> None:
    """Cancel the route's substitute bus of ``date`` (none set: a 404); committed."""
    row = substitute_on(route, date)
    if row is None:
        raise not_found("substitute bus")
    db.session.delete(row)
    db.session.commit()
    clear_caches()
