"""The ingest's device registry: a device imported while ingest runs is accepted at once."""

from backend.bundle import import_bundle
from backend.extensions import db
from backend.ingest.devices import DeviceRegistry


def test_a_device_imported_after_the_registry_loaded_is_found_on_its_first_message(app, imported):
    with app.app_context():
        registry = DeviceRegistry(db.engine, refresh_s=3600, miss_reload_s=3600)
        assert registry.get("dev-bus-07").vehicle_id == "bus-07"
        assert registry.get("dev-new") is None
        import_bundle({"vehicles": [{"id": "bus-new", "kind": "school_bus", "route_ids": []}],
                       "devices": [{"id": "dev-new2", "vehicle_id": "bus-new",
                                    "token": "token-new-2", "crs": "gcj02"}]})
        found = registry.get("dev-new2")
        assert found is not None and found.vehicle_id == "bus-new" and found.crs == "gcj02"
        assert found.vehicle_kind == "school_bus"


def test_an_unknown_device_is_looked_up_again_only_after_the_miss_interval(app, imported):
    with app.app_context():
        registry = DeviceRegistry(db.engine, refresh_s=3600, miss_reload_s=3600)
        assert registry.get("dev-late") is None
        import_bundle({"vehicles": [{"id": "bus-late", "kind": "school_bus", "route_ids": []}],
                       "devices": [{"id": "dev-late", "vehicle_id": "bus-late",
                                    "token": "token-late-1"}]})
        assert registry.get("dev-late") is None  # remembered as unknown for miss_reload_s
        registry.reload()
        assert registry.get("dev-late") is not None


def test_what_cannot_be_a_device_id_is_unknown_without_a_lookup(app, imported):
    """A NUL (PostgreSQL refuses it in a query), a kilobyte, a space: not an id (SPEC §3)."""
    with app.app_context():
        registry = DeviceRegistry(db.engine, refresh_s=3600, miss_reload_s=0)
        for bad in ("dev-bus-07\x00", "x" * 1000, "dev bus", ""):
            assert registry.get(bad) is None
        assert not registry._misses  # noqa: SLF001 - none of them was looked up
