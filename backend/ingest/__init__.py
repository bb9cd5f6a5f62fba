"""The ingest's side in the application: adapters of ``gps_ingest``'s ports and its processes.

- ``store.py`` — the SQL store (``gps_ingest.ports.IngestStore``); ``devices.py`` — the device
  and JT/T 808 terminal directories;
- ``steps.py`` — **the one list** of steps after storage (track → book subsidies → notify;
  alarms → notify; scans → notify);
- ``pipeline.py`` — the pipeline on the database; ``service.py`` — the application's pipeline
  and HTTP's use of it;
- ``processes.py`` (pipeline processes), ``runner.py`` (the MQTT ingest), ``member.py`` (slots
  of a shared-subscription group).

docs/ping-path.md follows one ping through all of it.
"""
