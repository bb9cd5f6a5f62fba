"""From tracker events to messages for parents and staff.

Pure, sans-IO part (no Flask, SQLAlchemy, paho, clock or environment): ``model`` (inputs and
``Message``), ``rules`` (one function per rule, ``messages_for``), ``templates`` (zh-CN / en
texts), ``dedupe`` (keys), ``offline`` (the offline/online watch), ``scans`` (card scans to
rider events), ``delivery`` (quiet hours, staleness), ``config`` (tunables).
"""
