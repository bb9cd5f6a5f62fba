"""xiaoche backend: the Flask application factory (Flask tutorial style, nothing connects at import)."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask

from backend import settings


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_path=os.environ.get("XIAOCHE_INSTANCE_PATH") or None,
        instance_relative_config=True,
    )
    app.config.from_mapping(settings.from_environment())
    app.config.update(
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        API_TITLE="xiaoche",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        # Swagger UI from the swagger-ui-bundle package, served by us (backend/api/docs.py): the
        # docs work on an intranet without internet (a CDN's script left a blank page there)
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/api/v1/docs/assets/",
        # no validator badge: Swagger UI would send the document to validator.swagger.io
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None},
        JSON_SORT_KEYS=False,
    )
    if test_config:
        app.config.update(test_config)

    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        db_file = Path(app.instance_path) / "xiaoche.sqlite3"
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{db_file}"
    if not app.config.get("SECRET_KEY"):
        # `serve`/`api` refuse to start without one (cli.py); tests and one-off commands get a
        # random key, which only means tokens do not outlive the process.
        app.config["SECRET_KEY"] = secrets.token_urlsafe(32)
        app.config["SECRET_KEY_GENERATED"] = True

    from backend.logs import configure_logging, init_request_ids

    configure_logging(app.config.get("LOG_LEVEL", "INFO"), app.config.get("LOG_FORMAT", "text"))
    init_request_ids(app)
    # every command migrates first; alembic's INFO lines ("setup plugin …") would bury its output
    logging.getLogger("alembic").setLevel(logging.WARNING)

    from backend import errors
    from backend.database import init_database
    from backend.extensions import api, init_limiter, migrate

    init_database(app)
    from backend.extensions import db

    migrate.init_app(
        app,
        db,
        directory=str(Path(__file__).parent / "migrations"),
        render_as_batch=True,
        compare_type=True,
    )
    api.init_app(app)
    init_limiter(app)  # login throttling; off under TESTING unless RATELIMIT_ENABLED is set
    errors.register(app)  # after api.init_app so problem+json wins over smorest's format

    from backend.api import register_blueprints

    register_blueprints(app, api)
    from backend.pages import bp as pages

    app.register_blueprint(pages)  # the parents' and staff web pages at /
    from backend.metrics import init_metrics

    init_metrics(app)  # GET /metrics for the operator
    from backend import maps

    maps.init_app(app)  # the base map: /tiles from a file, Leaflet; a bad file stops the start
    return app
