"""Pure tracking engine: no I/O, no clock; floats, dataclasses and Shapely in, events out.

The entry points are :func:`routing.tracker.track`, :func:`routing.tracker.live_view`,
:func:`routing.audit.audit_day` and :func:`routing.tracker.trip_id_for`; tunables are in
:class:`routing.config.TrackerConfig`. Submodules are imported explicitly by callers so that
``import routing.gcj02`` stays as light as it is.
"""
