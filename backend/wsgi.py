"""WSGI entry for gunicorn: ``gunicorn backend.wsgi:app`` (what ``xiaoche api`` runs).

``GET /api/v1/routes/{id}/live`` is answered by ``backend.fastpath.LiveFastPath`` in front of
Flask when it can be (``XIAOCHE_LIVE_FASTPATH``, on by default); everything else is Flask's.
Pooled PostgreSQL connections are pinged only after a second in the pool instead of before every
checkout (``database.ping_when_idle``).

Each worker imports this module after gunicorn forked it; what start-up allocated (modules, the
app, SQLAlchemy's mappers) is then moved out of the cyclic garbage collector's view, so a full
collection — which stops every thread of the worker — scans only what requests allocate.
"""

from backend import create_app
from backend.fastpath import install_live_fastpath
from backend.runtime import freeze_startup_objects

app = install_live_fastpath(create_app({"POOL_PING_IDLE_S": 1.0}))
freeze_startup_objects()
