"""GET /metrics (issue 17): what the ingest stored, refused and how fast, for the operator only;
`xiaoche ingest` serves its own on XIAOCHE_METRICS_PORT."""

from __future__ import annotations

import socket
import time
import urllib.request
import uuid

import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.ingest.conftest import IngestProcess, wait_for_count
from tests.integration.ingest.test_http_ingest import BUS07, ping
from tests.integration.ingest.test_mqtt_ingest import publish_all, single_ping_messages


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    return samples(response.get_data(as_text=True))


def test_the_metrics_count_what_http_ingest_stored_doubled_and_refused(client, imported):
    before = scrape(client)
    now = time.time()
    body = [ping(now - 30), ping(now - 20), {"ts": now, "lat": 95, "lon": 113}]
    assert client.post("/api/v1/ingest/pings", json=body, headers=BUS07).status_code == 202
    again = client.post("/api/v1/ingest/pings", json=[ping(now - 20)], headers=BUS07)
    assert again.status_code == 202 and again.get_json()["duplicates"] == 1
    after = scrape(client)

    def delta(name, **labels):
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0) - before.get(key, 0)

    assert delta("xiaoche_pings_stored_total", path="http") == 2
    assert delta("xiaoche_pings_duplicate_total", path="http") == 1
    assert sum(v - before.get(k, 0) for k, v in after.items()
               if k[0] == "xiaoche_rejects_total") == 1
    assert ("xiaoche_outbox_pending", ()) in after and ("xiaoche_streams_open", ()) in after


def test_the_metrics_are_not_there_for_an_address_outside_the_allowed_networks(client):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.20.30.40"}).status_code == 404
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_ingest_serves_batches_and_stored_pings_on_its_metrics_port(
        app, fleet, mqtt_url, _migrated, tmp_path):
    port = free_port()
    ingest = IngestProcess(_migrated, mqtt_url, tmp_path,
                           client_id=f"xiaoche-test-{uuid.uuid4().hex[:8]}")
    ingest.start(XIAOCHE_METRICS_PORT=str(port))
    try:
        publish_all(mqtt_url, single_ping_messages(fleet[:5], 20, time.time() - 3600)
                    + [(f"xiaoche/v1/devices/{fleet[0]}/pings", orjson.dumps({"ts": 1}))])
        assert wait_for_count(app, fleet[:5], 100, 60, ingest) == 100
        deadline = time.time() + 30
        while True:  # the counters follow the commit of the batch that stored the last ping
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                got = samples(r.read().decode())
            stored = got.get(("xiaoche_pings_stored_total", (("path", "mqtt"),)), 0)
            if stored >= 100 or time.time() > deadline:
                break
            time.sleep(0.2)
        assert stored == 100
        assert sum(v for k, v in got.items() if k[0] == "xiaoche_rejects_total") == 1
        assert got[("xiaoche_ingest_batch_messages_count", ())] >= 1
        assert got[("xiaoche_ingest_lag_seconds_count", ())] >= 1
    finally:
        ingest.stop()
