"""Two `xiaoche ingest` of one shared subscription group on one host (issue 17): with the
default client id each takes its own slot, so neither kicks the other off the broker, and
together they store every ping once."""

import time
import uuid

import pytest

from tests.integration.ingest.conftest import IngestProcess, wait_for_count
from tests.integration.ingest.test_mqtt_ingest import publish_all, single_ping_messages


@pytest.mark.usefixtures("imported")
def test_two_members_on_one_host_share_the_stream_without_kicking_each_other(
        app, fleet, mqtt_url, _migrated, tmp_path):
    group = f"g{uuid.uuid4().hex[:8]}"
    for i in range(2):
        (tmp_path / f"m{i}").mkdir()
    members = [IngestProcess(_migrated, mqtt_url, tmp_path / f"m{i}", client_id="xiaoche-ingest")
               for i in range(2)]
    try:
        for member in members:
            member.start(XIAOCHE_INGEST_SHARED_GROUP=group, XIAOCHE_INGEST_PROCESSES="0")
        time.sleep(2.0)  # a collision shows within a second: each CONNECT kicks the other
        publish_all(mqtt_url, single_ping_messages(fleet[:10], 20, time.time() - 3600))
        assert wait_for_count(app, fleet[:10], 200, 120) == 200
        time.sleep(1.0)
        assert wait_for_count(app, fleet[:10], 200, 1) == 200  # and no more: none doubled
        for member in members:
            assert member.running, member.output()
            assert "reconnecting" not in member.output(), member.output()
    finally:
        for member in members:
            member.stop()
