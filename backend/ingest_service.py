"""Moved to :mod:`backend.ingest.service`; this name stays for ``backend/api/ingest.py``."""

from backend.ingest.service import filter_config, ingest_http, pipeline, result_body

__all__ = ["filter_config", "ingest_http", "pipeline", "result_body"]
