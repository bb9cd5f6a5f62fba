"""HTTP API blueprints (flask-smorest: one blueprint per resource, schemas feed OpenAPI)."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api


def register_blueprints(app: Flask, api: Api) -> None:
    from backend.api import admin, audit, auth, events, health, ingest, me, routes, trips, vehicles

    app.register_blueprint(health.blp)
    from backend.api import docs

    app.register_blueprint(docs.bp)  # Swagger UI's files for /api/v1/docs, from PyPI
    api.register_blueprint(auth.blp, url_prefix="/api/v1/auth")
    api.register_blueprint(admin.blp, url_prefix="/api/v1/admin")
    api.register_blueprint(ingest.blp, url_prefix="/api/v1/ingest")
    api.register_blueprint(vehicles.blp, url_prefix="/api/v1/vehicles")
    from backend.api import texts

    api.register_blueprint(texts.blp, url_prefix="/api/v1/vehicles")
    api.register_blueprint(me.blp, url_prefix="/api/v1/me")
    api.register_blueprint(routes.blp, url_prefix="/api/v1/routes")
    api.register_blueprint(trips.blp, url_prefix="/api/v1/trips")
    api.register_blueprint(events.blp, url_prefix="/api/v1/events")
    api.register_blueprint(audit.blp, url_prefix="/api/v1/audit")
    from backend.api import meals, subsidies

    api.register_blueprint(meals.blp, url_prefix="/api/v1/meals")
    api.register_blueprint(meals.audit_blp, url_prefix="/api/v1/audit")
    api.register_blueprint(subsidies.blp, url_prefix="/api/v1/subsidies")
    from backend.api import finance

    api.register_blueprint(finance.blp, url_prefix="/api/v1/subsidies")
    from backend.api import plans

    api.register_blueprint(plans.blp, url_prefix="/api/v1/plans")
    from backend.api import gtfs_rt

    api.register_blueprint(gtfs_rt.blp, url_prefix="/api/v1/gtfs-rt")
    from backend.api import stream

    api.register_blueprint(stream.blp, url_prefix="/api/v1/stream")
    api.spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    from backend.api.common import refuse_nul_characters

    app.before_request(refuse_nul_characters)
