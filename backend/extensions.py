"""Extensions, created unbound and bound to an app in ``create_app`` (nothing connects at import)."""

from http import HTTPStatus

from apispec import BasePlugin
from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_smorest import Api
from flask_smorest.utils import prepare_response
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from backend.errors import PROBLEM_JSON, ProblemSchema

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


class EveryOperationMayAnswer400(BasePlugin):
    """Adds ``400`` to every operation: a request the whole API refuses before any view runs
    (a NUL character, ``backend.api.common.refuse_nul_characters``) is a 400 on any path."""

    def operation_helper(self, path=None, operations=None, **kwargs) -> None:
        for operation in (operations or {}).values():
            operation.setdefault("responses", {}).setdefault("400", HTTPStatus.BAD_REQUEST.name)


class ProblemApi(Api):
    """flask-smorest's Api, documenting errors the way ``errors.py`` answers them.

    Every error status (``UNAUTHORIZED``, ``NOT_FOUND``, …, what ``@blp.arguments`` and
    ``Blueprint.problems`` refer to) is a ``Problem`` in ``application/problem+json``, not
    flask-smorest's own ``Error`` in ``application/json``.  There is no catch-all ``default``
    response: each operation lists the statuses it can answer, so a client (and Schemathesis)
    can hold the API to them.
    """

    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_responses(self) -> None:
        for status in HTTPStatus:
            if status >= 400:
                response = {"description": status.phrase, "schema": self.ERROR_SCHEMA}
                prepare_response(response, self.spec, PROBLEM_JSON)
                self.spec.components.response(status.name, response, lazy=True)


api = ProblemApi(spec_kwargs={"extra_plugins": [EveryOperationMayAnswer400()]})

# Only the views that declare a limit (the login) are limited.  Headers on: a throttled client
# is told when to come back (Retry-After).  A moving window, because "10 per minute" should mean
# any 60 s, not a clock minute that lets 20 through across its edge.  The storage comes from
# XIAOCHE_RATELIMIT_STORAGE_URL (settings.py) so it is always explicit.
limiter = Limiter(get_remote_address, headers_enabled=True, strategy="moving-window")

# The endpoints that declare a limit. Every other request is exempt before Flask-Limiter looks
# any further (its request filter): without it, each request of the API resolves the limits of a
# view that has none (blueprint, exemptions, defaults: ~0.2 ms of a GET /healthz in the test
# client). A limit added to another view, or default limits, must add its endpoints here:
# tests/integration/api/test_live_fastpath.py fails otherwise.
LIMITED_ENDPOINTS = frozenset({"auth.token"})


@limiter.request_filter
def _not_limited() -> bool:
    return request.endpoint not in LIMITED_ENDPOINTS


def init_limiter(app: Flask) -> None:
    """Bind the limiter; it is off under ``TESTING`` unless the test config turns it on.

    The suite logs in hundreds of times a minute; the tests of the limits enable it themselves.
    The flag is always written to the config because flask-limiter keeps the previous app's
    ``enabled`` as its default.
    """
    app.config.setdefault("RATELIMIT_ENABLED", not app.config.get("TESTING", False))
    limiter.init_app(app)
