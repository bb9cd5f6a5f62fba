"""The demo's devices: a thread that publishes every simulated vehicle's position in real time.

Every ``every_s`` seconds each vehicle's position (``backend.demo.plan.fix_at`` of its current
leg, plus a little GPS noise) is published over MQTT, QoS 1, on the native topic
``xiaoche/v1/devices/{device_id}/pings`` with that device's own credentials (MQTT username =
device id, password = its token), stamped with the wall clock as a real device would; rider card
scans go to ``…/scans`` when their time comes. A device registered as ``gcj02`` sends GCJ-02
coordinates, as the Chinese map SDKs in such phones do. Runs are planned ``horizon_s`` ahead
and imported (``backend.demo.runs``) before the tracker needs them, so the fleet never stops.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable

import orjson
from flask import Flask

from backend.demo.fleet import DemoDevice, Timeline
from backend.demo.geometry import offset
from backend.demo.plan import Fix, Leg, ScanPlan, fix_at
from backend.demo.runs import import_demo_runs
from gps_ingest.publisher import WindowedPublisher
from routing.gcj02 import wgs84_to_gcj02

log = logging.getLogger(__name__)


def noisy(fix: Fix, rng: random.Random, sigma_m: float = 3.0) -> dict:
    """A ping payload of ``fix`` as a phone's GPS reports it: a few metres off, speed jitter."""
    north = max(-3 * sigma_m, min(3 * sigma_m, rng.gauss(0.0, sigma_m)))
    east = max(-3 * sigma_m, min(3 * sigma_m, rng.gauss(0.0, sigma_m)))
    lat, lon = offset((fix.lat, fix.lon), north, east)
    moving = fix.speed_kmh > 0.5
    speed = max(0.0, fix.speed_kmh + rng.gauss(0.0, 1.0)) if moving else 0.0
    return {"lat": round(lat, 6), "lon": round(lon, 6), "speed_kmh": round(speed, 1),
            "heading_deg": round(fix.heading_deg) % 360 if moving else None,
            "accuracy_m": round(rng.uniform(4.0, 9.0), 1)}


class FleetSimulator:
    """Publishes the timelines' positions and scans until :meth:`stop`."""

    def __init__(self, app: Flask, mqtt_url: str, timelines: list[Timeline],
                 devices: dict[str, DemoDevice], *, every_s: float = 5.0,
                 horizon_s: float = 7200.0, ready: Callable[[], bool] = lambda: True,
                 clock: Callable[[], float] = time.time, seed: int = 11,
                 import_runs: Callable[[list[Leg], float, bool], int] | None = None,
                 publisher: Callable[[DemoDevice], WindowedPublisher] | None = None):
        self.app = app
        self.mqtt_url = mqtt_url
        self.timelines = [t for t in timelines if t.vehicle_id in devices]
        self.devices = devices
        self.every_s = every_s
        self.horizon_s = horizon_s
        self.ready = ready
        self.clock = clock
        self.rng = random.Random(seed)
        self.published = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publishers: dict[str, WindowedPublisher] = {}
        self._scanned_until: dict[str, float] = {}
        self._seq = 0
        self._unimported: list[Leg] = []  # planned runs not in the timetable yet
        self._imported_once = False
        self._import_runs = import_runs or self._import_in_app
        self._connect = publisher or self._connect_device

    # --- runs --------------------------------------------------------------------------
    def plan(self, now: float | None = None) -> int:
        """Plan every vehicle ``horizon_s`` ahead and import the new runs; returns how many.
        The first call also drops the runs an earlier demo planned and did not drive."""
        now = self.clock() if now is None else now
        self._unimported += [leg for t in self.timelines
                             for leg in t.plan_until(now + self.horizon_s) if leg.route_id]
        if not self._unimported:
            return 0
        count = self._import_runs(self._unimported, now, not self._imported_once)
        self._unimported, self._imported_once = [], True  # (kept for the next try if it failed)
        return count

    def _import_in_app(self, legs: list[Leg], now: float, fresh_start: bool) -> int:
        with self.app.app_context():
            return import_demo_runs(legs, now, fresh_start)

    def _plan_if_due(self, now: float) -> None:
        if self._unimported or min(t.planned_until for t in self.timelines) < now + self.horizon_s / 2:
            try:
                log.info("demo: %d more runs imported", self.plan(now))
            except Exception:  # a locked database: the vehicles keep driving, runs come next tick
                log.exception("demo: importing the next runs failed; trying again")

    # --- the thread ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="xiaoche-demo-fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop publishing. A tick stuck reconnecting to a broker that is already gone (Ctrl-C
        reaches the broker too) is not waited for beyond ``timeout_s``: the thread is a daemon."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                return  # it closes its connections itself when its tick gives up
        self._close()

    def _run(self) -> None:
        deadline = time.monotonic() + 60.0
        while not self.ready() and time.monotonic() < deadline:
            if self._stop.wait(0.1):
                return
        started = self.clock()
        self._scanned_until = {t.vehicle_id: started - self.every_s for t in self.timelines}
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.tick(self.clock())
            except OSError as exc:  # the broker restarts or is going away: try again next tick
                self._close()
                if not self._stop.is_set():
                    log.warning("demo: cannot publish to %s (%s); trying again", self.mqtt_url,
                                exc)
            except Exception:  # a locked database, a bug: say so, keep the demo going
                self._close()
                log.exception("demo: a simulator tick failed")
            next_tick += self.every_s
            # (each publish also reads the PUBACKs of the previous ones and keeps the
            # connection alive: a tick every few seconds is well inside MQTT's keep-alive)
            self._stop.wait(max(0.0, next_tick - time.monotonic()))
            if time.monotonic() > next_tick + self.every_s:  # fell behind (a suspended laptop)
                next_tick = time.monotonic()

    def tick(self, now: float) -> None:
        """Publish every vehicle's position at ``now`` and the scans due since the last tick."""
        self._plan_if_due(now)
        for timeline in self.timelines:
            if self._stop.is_set():
                return
            device = self.devices[timeline.vehicle_id]
            since = self._scanned_until.get(timeline.vehicle_id, now - self.every_s)
            scans = [s for leg in timeline.planned for s in leg.scans if since < s.ts <= now]
            self._scanned_until[timeline.vehicle_id] = now
            payload = noisy(fix_at(timeline.leg_at(now), now), self.rng)
            self._seq += 1
            payload = {"ts": round(now, 3), **payload, "seq": self._seq}
            if device.crs == "gcj02":
                payload["lat"], payload["lon"] = (round(v, 6) for v in
                                                  wgs84_to_gcj02(payload["lat"], payload["lon"]))
            publisher = self._publisher(device)
            publisher.publish(f"xiaoche/v1/devices/{device.device_id}/pings",
                              orjson.dumps(payload))
            self.published += 1
            if scans:
                publisher.publish(f"xiaoche/v1/devices/{device.device_id}/scans", orjson.dumps(
                    [self._scan_payload(s, device) for s in scans]))

    @staticmethod
    def _scan_payload(scan: ScanPlan, device: DemoDevice) -> dict:
        lat, lon = scan.lat, scan.lon
        if device.crs == "gcj02":
            lat, lon = wgs84_to_gcj02(lat, lon)
        return {"ts": round(scan.ts, 3), "card_id": scan.card_id, "action": scan.action,
                "lat": round(lat, 6), "lon": round(lon, 6)}

    def _publisher(self, device: DemoDevice) -> WindowedPublisher:
        publisher = self._publishers.get(device.device_id)
        if publisher is None:
            publisher = self._publishers[device.device_id] = self._connect(device)
        return publisher

    def _connect_device(self, device: DemoDevice) -> WindowedPublisher:
        """The device's own MQTT connection: its id as username, its token as password."""
        return WindowedPublisher(self.mqtt_url, client_id=f"demo-{device.device_id}",
                                 window=100, username=device.device_id, password=device.token)

    def _drop(self, device_id: str) -> None:
        publisher = self._publishers.pop(device_id, None)
        if publisher is not None:
            with contextlib.suppress(Exception):
                publisher.close()

    def _close(self) -> None:
        for device_id in list(self._publishers):
            self._drop(device_id)
        if self._stop.is_set():
            log.info("demo: the simulated fleet stopped after %d positions", self.published)
