"""Every runtime setting of the service, declared once with its default and why.

Values come from ``XIAOCHE_*`` environment variables (SPEC §1 plus our own additions); tests
override them through ``create_app(test_config)``.  Pure tunables of the tracker live in
``routing.config`` and of the ingest filters in ``gps_ingest.filters``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    env: str
    key: str
    default: Any
    doc: str
    cast: type = str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "XIAOCHE_DATABASE_URL",
        "SQLALCHEMY_DATABASE_URI",
        None,
        "SQLAlchemy URL; default: SQLite file xiaoche.sqlite3 in the instance folder",
    ),
    Setting(
        "XIAOCHE_MQTT_URL",
        "MQTT_URL",
        None,
        "broker URL mqtt://user:pass@host:port; unset: serve/demo start an embedded broker",
    ),
    Setting(
        "XIAOCHE_SECRET_KEY",
        "SECRET_KEY",
        None,
        "signs user tokens; random per start in demo, required otherwise",
    ),
    Setting(
        "XIAOCHE_MAX_PING_AGE_S",
        "MAX_PING_AGE_S",
        604800.0,
        "pings older than this (by their own ts) are rejected as too_old; 0 = no limit",
        float,
    ),
    Setting(
        "XIAOCHE_MAX_FUTURE_S",
        "MAX_FUTURE_S",
        300.0,
        "device clocks drift a little; 5 min ahead is the SPEC's bound for future_ts",
        float,
    ),
    Setting(
        "XIAOCHE_MAX_ACCURACY_M",
        "MAX_ACCURACY_M",
        500.0,
        "a fix worse than this cannot place a bus on a village road; 0 = accept any",
        float,
    ),
    Setting(
        "XIAOCHE_TOKEN_TTL_S",
        "TOKEN_TTL_S",
        12 * 3600,
        "user tokens expire after a working day so a lost phone stops working",
        int,
    ),
    Setting(
        "XIAOCHE_LOGIN_LIMIT_PER_USER",
        "LOGIN_LIMIT_PER_USER",
        "10/minute",
        "failed logins per username before 429: stops password guessing on one account "
        "without locking out someone who mistypes a few times",
    ),
    Setting(
        "XIAOCHE_LOGIN_LIMIT_PER_IP",
        "LOGIN_LIMIT_PER_IP",
        "30/minute",
        "failed logins per client address before 429: stops guessing across many usernames; "
        "higher than per user because a school's staff may share one NAT address",
    ),
    Setting(
        "XIAOCHE_RATELIMIT_STORAGE_URL",
        "RATELIMIT_STORAGE_URI",
        "memory://",
        "where login attempts are counted; memory:// is per process, so give several "
        "gunicorn workers or api processes a shared one (redis://127.0.0.1:6379)",
    ),
    Setting(
        "XIAOCHE_EMBEDDED_MQTT_PORT",
        "EMBEDDED_MQTT_PORT",
        1883,
        "port of the embedded broker (127.0.0.1); a free one is chosen if taken",
        int,
    ),
    Setting(
        "XIAOCHE_INGEST_BATCH_MAX",
        "INGEST_BATCH_MAX",
        4000,
        "messages per batch, split over the pipeline processes (one transaction each): tracker "
        "states are locked and saved once per vehicle per batch, so a backlog drains faster in "
        "larger batches (bench/ingest.py: 2000 per process)",
        int,
    ),
    Setting(
        "XIAOCHE_INGEST_BATCH_MS",
        "INGEST_BATCH_MS",
        50,
        "longest wait before a partial batch is committed: keeps live latency low",
        int,
    ),
    Setting(
        "XIAOCHE_METRICS_ALLOW",
        "METRICS_ALLOW",
        "127.0.0.1/32,::1/128",
        "networks (comma-separated) whose clients may read GET /metrics; others get 404",
        str,
    ),
    Setting(
        "XIAOCHE_METRICS_PORT",
        "METRICS_PORT",
        0,
        "xiaoche ingest serves its own metrics on 127.0.0.1:PORT (0: not)",
        int,
    ),
    Setting(
        "XIAOCHE_INGEST_CLIENT_ID",
        "INGEST_CLIENT_ID",
        "xiaoche-ingest",
        "MQTT client id; fixed so the broker keeps the session across restarts",
        str,
    ),
    Setting(
        "XIAOCHE_INGEST_SHARED_GROUP",
        "INGEST_SHARED_GROUP",
        None,
        "MQTT 5 shared-subscription group so several ingest processes split the load",
    ),
    Setting(
        "XIAOCHE_INGEST_SLOT_TTL_S",
        "INGEST_SLOT_TTL_S",
        15.0,
        "a shared group's member renews its slot's lease every third of this; a slot not renewed "
        "for this long is adopted by a survivor, which drains its broker session "
        "(backend/ingest/member.py): a dead member's queued pings are stored within ~4/3 of it",
        float,
    ),
    Setting(
        "XIAOCHE_INGEST_PROCESSES",
        "INGEST_PROCESSES",
        2,
        "pipeline processes behind the MQTT connection of `xiaoche ingest` (each device's "
        "messages always to the same one; a batch is acked once all committed their share): "
        "single pings with tracking 0.39 -> 0.64 of bare paho, arrays 52 k -> 85 k pings/s at 2 "
        "on 2 cores (bench/ingest.py); 0: the pipeline runs in the MQTT process itself, as in "
        "`serve` (backend/ingest/processes.py)",
        int,
    ),
    Setting(
        "XIAOCHE_INGEST_SESSION_EXPIRY_S",
        "INGEST_SESSION_EXPIRY_S",
        7 * 86400,
        "how long the broker keeps the ingest's session (and queues pings) while it is down",
        int,
    ),
    Setting(
        "XIAOCHE_INGEST_HEARTBEAT_S",
        "INGEST_HEARTBEAT_S",
        10.0,
        "`xiaoche ingest` writes instance/ingest-heartbeat.json this often (broker connected? "
        "last batch? a batch stuck?); `xiaoche healthcheck ingest` fails on a heartbeat older "
        "than three of these",
        float,
    ),
    Setting(
        "XIAOCHE_JT808_PORT",
        "JT808_PORT",
        None,
        "TCP port of the JT/T 808 gateway inside `serve` (README, JT/T 808 terminals); unset: "
        "off. `xiaoche jt808` runs the gateway alone (on this port, or --port)",
        int,
    ),
    Setting(
        "XIAOCHE_JT808_HOST",
        "JT808_HOST",
        "0.0.0.0",
        "address the JT/T 808 gateway binds: terminals connect over the mobile network, so all "
        "interfaces once the port is set",
    ),
    Setting(
        "XIAOCHE_JT808_IDLE_S",
        "JT808_IDLE_S",
        180.0,
        "a JT/T 808 connection silent this long is closed: terminals send a heartbeat every "
        "60 s by default (parameter 0x0001), so three missed ones",
        float,
    ),
    Setting(
        "XIAOCHE_JT808_MAX_CONNECTIONS",
        "JT808_MAX_CONNECTIONS",
        10000,
        "open JT/T 808 connections per process; past it a new one is closed at once (the "
        "terminal retries, as after any network loss)",
        int,
    ),
    Setting(
        "XIAOCHE_JT808_TEXT_POLL_S",
        "JT808_TEXT_POLL_S",
        1.0,
        "how often a JT/T 808 gateway looks in the database for texts queued to the drivers of "
        "its connected terminals (POST /vehicles/{id}/texts): one small query, only while a "
        "terminal is connected",
        float,
    ),
    Setting(
        "XIAOCHE_AUDIT_AT",
        "AUDIT_AT",
        "00:30",
        "local time (HH:MM, district timezone) of the nightly audit of yesterday's trips: "
        "after the day's last runs, before the morning's first",
    ),
    Setting(
        "XIAOCHE_MEAL_REPORT_CUTOFF",
        "MEAL_REPORT_CUTOFF",
        "10:00",
        "local time (HH:MM, district timezone) by which a school's meal report is due on a "
        "school day; then its logistics staff are told that it is missing",
    ),
    Setting(
        "XIAOCHE_OFFLINE_AFTER_S",
        "OFFLINE_AFTER_S",
        180.0,
        "a vehicle's device silent this long while one of its runs is scheduled is reported "
        "offline to the staff who see it (once; then once back online)",
        float,
    ),
    Setting(
        "XIAOCHE_OFFLINE_CHECK_S",
        "OFFLINE_CHECK_S",
        30.0,
        "how often the scheduler checks for silent devices",
        float,
    ),
    Setting(
        "XIAOCHE_SCHEDULER_LEASE_S",
        "SCHEDULER_LEASE_S",
        30.0,
        "a scheduler runs the jobs only while it holds a lease in the database, renewed every "
        "third of this; a standby scheduler takes over at most this long after the holder died",
        float,
    ),
    Setting(
        "XIAOCHE_DISPATCH_INTERVAL_S",
        "DISPATCH_INTERVAL_S",
        2.0,
        "how often the scheduler pushes due notifications from the outbox: bounds the delay "
        "an event waits before its push goes out",
        float,
    ),
    Setting(
        "XIAOCHE_MEAL_ATTENDANCE_FACTOR",
        "MEAL_ATTENDANCE_FACTOR",
        0.95,
        "share of enrolled boarders assumed present when a report gives no attendance (the "
        "USDA edit check's attendance factor): meals served above enrolled x factor are flagged",
        float,
    ),
    Setting(
        "XIAOCHE_STREAM_POLL_MS",
        "STREAM_POLL_MS",
        250,
        "how often each serving process reads new positions and notifications for all its "
        "open /stream connections at once (backend/streams/hub.py); on PostgreSQL the ingest's "
        "commits also wake it at once (LISTEN/NOTIFY, backend/streams/runner.py), so this is "
        "the fallback for what no notice announces",
        int,
    ),
    Setting(
        "XIAOCHE_STREAM_HEARTBEAT_S",
        "STREAM_HEARTBEAT_S",
        15.0,
        "a quiet /stream sends a keep-alive comment this often: proxies drop idle connections "
        "after 30–60 s, and a write is how a worker notices a client that went away",
        float,
    ),
    Setting(
        "XIAOCHE_STREAM_MAX_S",
        "STREAM_MAX_S",
        3600.0,
        "the server ends a /stream after this long and the client resumes with Last-Event-ID, "
        "so no worker thread is held forever and tokens are checked again",
        float,
    ),
    Setting(
        "XIAOCHE_STREAM_MAX",
        "STREAM_MAX",
        5000,
        "open /stream connections per serving process (each stream process of `xiaoche api`, or `serve`): past it a "
        "new one is answered 503 with Retry-After and the app polls /live; a stream costs "
        "~17 kB, and 10 000 on two workers ran on 0.55 cores of a shared 2-core machine "
        "(bench/parents.py); 0 = no limit",
        int,
    ),
    Setting(
        "XIAOCHE_STREAM_PROCESSES",
        "STREAM_PROCESSES",
        1,
        "`xiaoche api`: processes of their own that serve /stream, handed each stream's "
        "connection by the workers (backend/streams/handoff.py), so streams and REST never "
        "share an interpreter lock; 0 = each worker serves its own streams (as it does while "
        "a stream process is restarted)",
        int,
    ),
    Setting(
        "XIAOCHE_WEBHOOK_URL",
        "WEBHOOK_URL",
        None,
        "http(s) endpoint every pushed notification is POSTed to, signed (README, "
        "Notifications delivery); unset: no webhook channel",
    ),
    Setting(
        "XIAOCHE_WEBHOOK_SECRET",
        "WEBHOOK_SECRET",
        None,
        "HMAC-SHA256 key of the webhook signature; required when XIAOCHE_WEBHOOK_URL is set",
    ),
    Setting(
        "XIAOCHE_PUSH_MAX_ATTEMPTS",
        "PUSH_MAX_ATTEMPTS",
        8,
        "tries of one push (MQTT, webhook) before it is given up as dead: with the 2 s…5 min "
        "backoff, 8 tries span about 4 minutes, well inside the 15 minutes after which a "
        "notification is stale anyway",
        int,
    ),
    Setting(
        "XIAOCHE_PUSH_TIMEOUT_S",
        "PUSH_TIMEOUT_S",
        10.0,
        "longest wait for one push to be taken (HTTP answer, MQTT PUBACK, broker connection) "
        "before it counts as a failed, retryable try",
        float,
    ),
    Setting(
        "XIAOCHE_LIVE_FASTPATH",
        "LIVE_FASTPATH",
        1,
        "1: gunicorn's app (backend.wsgi) answers GET /routes/{id}/live from the caller and "
        "answer caches in front of Flask (backend/fastpath.py: the same answers, and about 2.5x "
        "the requests/s in bench/api.py); 0: every request goes through Flask",
        int,
    ),
    Setting(
        "XIAOCHE_MAP_TILES",
        "MAP_TILES",
        None,
        "the pages' base map: a tile URL template (https://…{z}/{x}/{y}…, several separated by "
        "spaces are layered) or a raster tile file xiaoche serves at /tiles/{z}/{x}/{y} "
        "(mbtiles:///path/county.mbtiles, pmtiles:///path/county.pmtiles) for an intranet "
        "without internet; unset: the schematic view (backend/maps)",
    ),
    Setting(
        "XIAOCHE_MAP_TILES_CRS",
        "MAP_TILES_CRS",
        "wgs84",
        "datum of the tiles: wgs84 (天地图, OSM) or gcj02 (AMap, Tencent): with gcj02 the pages "
        "shift positions, stops and paths by the GCJ-02 offset so the bus sits on the road",
    ),
    Setting(
        "XIAOCHE_MAP_ATTRIBUTION",
        "MAP_ATTRIBUTION",
        None,
        "the credit the tiles' licence requires, shown on the map; default: the tile file's "
        "attribution metadata (OpenStreetMap's for its own servers)",
    ),
    Setting(
        "XIAOCHE_PLAN_OSM",
        "PLAN_OSM",
        None,
        "an OpenStreetMap extract of the county (.osm.pbf) whose roads POST /api/v1/plans "
        "times travel on (backend/osm_roads.py); unset: straight line × road factor",
    ),
    Setting(
        "XIAOCHE_RETENTION_DAYS",
        "RETENTION_DAYS",
        0,
        "raw pings, card scans, rejects and the access log older than this many days are "
        "deleted nightly (on PostgreSQL whole day partitions of pings are dropped; trip "
        "audits, events, ledgers kept); 0: kept forever",
        float,
    ),
    Setting(
        "XIAOCHE_PING_PARTITIONS_AHEAD_DAYS",
        "PING_PARTITIONS_AHEAD_DAYS",
        7,
        "PostgreSQL: day partitions of pings created ahead (hourly check by the scheduler; a "
        "ping of a day without one lands in the default partition and is moved later)",
        int,
    ),
    Setting(
        "XIAOCHE_ACCESS_LOG_FLUSH_S",
        "ACCESS_LOG_FLUSH_S",
        5.0,
        "the access log's reads are written every this many seconds, one row per user, kind "
        "and route per interval (what a kill -9 may lose)",
        float,
    ),
    Setting("XIAOCHE_LOG_LEVEL", "LOG_LEVEL", "INFO", "Python logging level"),
    Setting("XIAOCHE_LOG_FORMAT", "LOG_FORMAT", "text",
            "text, or json (one object per line: time, level, logger, request_id, message)"),
)


def from_environment(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Return the Flask config keys for every ``XIAOCHE_*`` variable that is set."""
    environ = dict(os.environ) if environ is None else environ
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None or raw == "":
            config[setting.key] = setting.default
            continue
        try:
            config[setting.key] = setting.cast(raw)
        except ValueError as exc:
            raise SystemExit(
                f"{setting.env}={raw!r} is not a valid {setting.cast.__name__}"
            ) from exc
    return config


def describe() -> str:
    """A Markdown table of the settings (tests/unit/test_settings_documented.py checks that
    the README has a row for each)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        rows.append(f"| `{s.env}` | `{s.default}` | {s.doc} |")
    return "\n".join(rows)
