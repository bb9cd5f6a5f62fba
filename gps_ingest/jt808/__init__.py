"""JT/T 808 (2013 and 2019), the protocol of the terminals Chinese school buses carry.

Pure framing and decoding, no I/O and nothing of ``backend``:

- :mod:`~gps_ingest.jt808.frame` — 0x7e delimiters, 0x7d escapes, the XOR check, 2013 and 2019
  headers, a TCP stream cut into frames;
- :mod:`~gps_ingest.jt808.reassembly` — sub-packages put back together;
- :mod:`~gps_ingest.jt808.messages` — the bodies (location, batch, registration,
  authentication, driver card) and the platform's answers (0x8001, 0x8100);
- :mod:`~gps_ingest.jt808.positions` — a frame as the ingest pipeline's decoder: pings and
  rejects.

The TCP gateway that uses them is :mod:`gps_ingest.jt808_gateway`.
"""
