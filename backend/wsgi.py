"""WSGI entry for gunicorn: ``gunicorn backend.wsgi:app`` (what ``xiaoche api`` runs).

``GET /api/v1/routes/{id}/live`` is answered by ``backend.fastpath.LiveFastPath`` in front of
Flask when it can be (``XIAOCHE_LIVE_FASTPATH``, on by default); everything else is Flask's.
Pooled PostgreSQL connections are pinged only after a second in the pool instead of before every
checkout (``database.ping_when_idle``).
"""

from backend import create_app
from backend.fastpath import install_live_fastpath

app = install_live_fastpath(create_app({"POOL_PING_IDLE_S": 1.0}))
