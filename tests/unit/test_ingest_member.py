"""Ingest members of one shared group on one host: distinct client ids, each stable across its
restarts, however the previous process ended (backend.ingest_member)."""

import subprocess
import sys
import uuid

import pytest

from backend.ingest_member import take_slot


@pytest.fixture
def slots(tmp_path):
    """take(group) -> client id of a new slot; every slot released at the end."""
    held = []

    def take(group):
        slot = take_slot("xiaoche-ingest", group, host="h", folder=tmp_path)
        held.append(slot)
        return slot

    yield take
    for slot in held:
        slot.release()


def test_members_on_one_host_get_distinct_ids_and_a_freed_slot_is_taken_again(slots):
    group = uuid.uuid4().hex[:8]
    first, second = slots(group), slots(group)
    assert (first.client_id, second.client_id) == ("xiaoche-ingest-h-0", "xiaoche-ingest-h-1")
    first.release()  # the member of slot 0 stopped: the next one to start is slot 0 again
    assert slots(group).client_id == "xiaoche-ingest-h-0"
    assert slots("another-group").client_id == "xiaoche-ingest-h-0"  # slots are per group


def test_a_member_killed_with_sigkill_leaves_its_slot_to_its_successor(slots, tmp_path):
    group = uuid.uuid4().hex[:8]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from pathlib import Path\n"
         "from backend.ingest_member import take_slot\n"
         f"slot = take_slot('xiaoche-ingest', '{group}', host='h', folder=Path(sys.argv[1]))\n"
         "print(slot.client_id, flush=True)\n"
         "time.sleep(600)\n", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "xiaoche-ingest-h-0"
        assert slots(group).client_id == "xiaoche-ingest-h-1"
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert slots(group).client_id == "xiaoche-ingest-h-0"
