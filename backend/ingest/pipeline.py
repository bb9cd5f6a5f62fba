"""The ingest pipeline on this application's database: ``gps_ingest``'s pipeline with the SQL
store and the device directory of ``backend/ingest`` plugged into its ports."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy.engine import Engine

from backend.ingest.devices import DeviceRegistry
from backend.ingest.store import SqlStore
from gps_ingest import pipeline as core
from gps_ingest.filters import FilterConfig
from gps_ingest.ports import DeviceDirectory


class IngestPipeline(core.IngestPipeline):
    """:class:`gps_ingest.pipeline.IngestPipeline` storing into ``engine`` (devices read from it
    unless ``registry`` is given)."""

    def __init__(self, engine: Engine, filter_config: FilterConfig | None = None,
                 registry: DeviceDirectory | None = None, clock: Callable[[], float] = time.time,
                 after_store: Sequence[core.AfterStore] = (),
                 after_scans: Sequence[core.AfterScans] = (), shared_stream: bool = False):
        super().__init__(SqlStore(engine), registry or DeviceRegistry(engine), filter_config,
                         clock=clock, after_store=after_store, after_scans=after_scans,
                         shared_stream=shared_stream)
        self.engine = engine
