"""A route two buses list is a pool: each run is driven by one of them, live (the ingest's
tracking step reads the other bus's hold from its stored state) and in the audit (the pool is
tracked together in event time) — the same bus both ways (issue 13, cause 2)."""

from __future__ import annotations

import json

from sqlalchemy import select

from backend.audit_service import audit_date
from backend.bundle import import_bundle
from backend.extensions import db
from backend.ingest.service import pipeline
from backend.models import Event, TripAudit
from gps_ingest.pipeline import Message
from tests.integration.audit.conftest import MONDAY, drive_pings

SPARE = "bus-07y"


def interleaved(streams: dict[str, list[dict]], every_s: float = 60.0) -> list[Message]:
    """One message per device per minute of event time, minutes in order: two buses reporting
    side by side through one ingest."""
    slices: dict[int, dict[str, list[dict]]] = {}
    for device_id, pings in streams.items():
        for p in pings:
            slices.setdefault(int(p["ts"] // every_s), {}).setdefault(device_id, []).append(p)
    return [Message(kind="pings", device_id=device_id, payload=json.dumps(chunk).encode(),
                    received_at=chunk[-1]["ts"] + 1)
            for k in sorted(slices) for device_id, chunk in sorted(slices[k].items())]


def test_the_spare_leaving_later_does_not_take_the_run_the_first_bus_drives(app, imported):
    with app.app_context():
        import_bundle({
            "vehicles": [{"id": SPARE, "kind": "school_bus", "route_ids": ["zt-am-1"],
                          "speed_limit_kmh": 60}],
            "devices": [{"id": f"dev-{SPARE}", "vehicle_id": SPARE, "token": f"token-{SPARE}"}],
        })
    first = drive_pings(imported)
    # the spare waits at the same first stop and follows eight minutes behind, on the same roads
    spare = [dict(p, ts=round(p["ts"] + 480, 3)) for p in first]
    ingest = pipeline(app)
    ingest.registry.reload()
    results = ingest.process(interleaved({"dev-bus-07": first, f"dev-{SPARE}": spare}))
    assert all(not r.rejected for r in results)

    with app.app_context():
        live = db.session.execute(select(Event.vehicle_id, Event.run_id)
                                  .where(Event.kind == "trip_started")).all()
        db.session.rollback()
    assert sorted(live) == [("bus-07", "zt-am-1")]  # one bus per run; the spare started none

    with app.app_context():
        audit_date(MONDAY)
        audited = db.session.execute(select(TripAudit.vehicle_id, TripAudit.run_id)).all()
        db.session.rollback()
    assert sorted(audited) == sorted(live)
