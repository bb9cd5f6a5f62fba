"""The web pages parents and staff use, mounted at ``/``: a server-rendered HTML shell per page,
vanilla JavaScript that reads the public API (``/api/v1``) and draws routes as inline SVG.

Everything is served from this package — no CDN, no build step — so it works on a village
school's intranet without internet access. Every visible string lives in one dictionary per
language (``i18n/zh-CN.json``, ``i18n/en.json``): the shell is rendered in Simplified Chinese
from it (readable even before the scripts run), and the same dictionaries are handed to the
page's JavaScript for the English toggle and everything it draws.

Pages: ``/`` (log in), ``/parent`` (each child's bus, ETA, stops, messages), ``/staff``
(the staff console: vehicles, the subsidy ledger, the trip audit, a vehicle's day). With ``XIAOCHE_MAP_TILES`` set they draw on a Leaflet base
map (``backend/maps``, ``static/basemap.js``), else the schematic SVG (``static/routemap.js``). ``/pages/routes/{id}/path`` gives a route's drawn path
to whoever may read the route live (the API's ``/routes/{id}/live`` has the stops, not the path);
``/pages/staff/directory`` gives the console the names it picks from (the caller's teachers,
routes and schools, under the API's scopes).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, jsonify, render_template
from markupsafe import Markup

HERE = Path(__file__).parent
LANGUAGES = ("zh-CN", "en")
DEFAULT_LANGUAGE = "zh-CN"
DEFAULT_TZ = "Asia/Shanghai"
# Scripts and styles come from this server only; the API is same-origin (fetch, EventSource).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")

MAP_PAGES = ("parent", "staff")  # the pages that draw a map: base map when one is configured
bp = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
               static_url_path="/assets")


@cache
def dictionaries() -> dict[str, dict[str, str]]:
    return {lang: json.loads((HERE / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
            for lang in LANGUAGES}


@cache
def dictionaries_json() -> str:
    """Both dictionaries for the page's ``<script type="application/json">``: UTF-8 rather than
    ``\\u`` escapes (half the bytes over a village's mobile link), and nothing that could end the
    element."""
    text = json.dumps(dictionaries(), ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def translate(key: str, **params: Any) -> str:
    text = dictionaries()[DEFAULT_LANGUAGE].get(key, key)
    for name, value in params.items():
        text = text.replace("{" + name + "}", str(value))
    return text


def district_timezone() -> str:
    """The timezone the pages show times in: the district's (its parents and staff live there),
    not the browser's."""
    from sqlalchemy import select
    from sqlalchemy.exc import SQLAlchemyError

    from backend.extensions import db
    from backend.models import District

    try:
        return db.session.scalar(select(District.timezone).order_by(District.id)) or DEFAULT_TZ
    except SQLAlchemyError:  # the page still renders; times then show in the default zone
        db.session.rollback()
        return DEFAULT_TZ


def _script_json(value: Any) -> str:
    """JSON for a ``<script type="application/json">``: nothing in it can end the element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(template: str, page: str) -> Response:
    from backend.maps import current_source

    source = current_source() if page in MAP_PAGES else None
    html = render_template(template, page=page, t=translate, lang=DEFAULT_LANGUAGE,
                           timezone=district_timezone(),
                           dictionaries=dictionaries(), dictionaries_json=Markup(dictionaries_json()),
                           base_map=source is not None,
                           map_json=Markup(_script_json(source.client_config())) if source else None)
    response = Response(html, mimetype="text/html")
    csp = CSP
    if source is not None and source.image_origins():  # a tile server's URL template
        csp = csp.replace("img-src 'self' data:",
                          "img-src 'self' data: " + " ".join(source.image_origins()))
    response.headers["Content-Security-Policy"] = csp
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/")
def login_page() -> Response:
    return _page("login.html", "login")


@bp.get("/parent")
def parent_page() -> Response:
    return _page("parent.html", "parent")


@bp.get("/staff")
def staff_page() -> Response:
    return _page("staff.html", "staff")


@bp.get("/pages/routes/<route_id>/path")
def route_path(route_id: str) -> Response:
    """``{route_id, name, path: [[lat, lon], …]}`` (WGS-84) for a caller who may read the route
    live; 401 without a valid token, 404 outside the caller's scope (as the API answers)."""
    from backend.auth import current_user
    from backend.errors import not_found
    from backend.extensions import db
    from backend.models import Route
    from backend.scopes import can_see_route

    user = current_user()
    if user.role not in ("parent", "logistics", "admin", "driver") or not can_see_route(
            user, route_id):
        raise not_found("route")
    route = db.session.get(Route, route_id)
    path = [[c[1], c[0]] for c in route.path["coordinates"]]
    response = jsonify({"route_id": route.id, "name": route.name, "path": path})
    response.headers["Cache-Control"] = "private, max-age=300"
    return response


@bp.get("/pages/staff/directory")
def staff_directory() -> Response:
    """What the staff console lists to pick from, in the caller's scope only: ``{teachers:
    [{teacher_id, name, home_school_id}], routes: [{route_id, name, school_id}], schools:
    [{school_id, name}]}`` — the teachers whose ledger ``GET /api/v1/subsidies`` would show
    them, the routes ``/api/v1/audit/trips`` would list, and the schools those name (the finance
    office: every teacher and school, no route). 404 for anyone but logistics, admin and finance
    (the API has no list of teachers; this is the pages' own)."""
    from sqlalchemy import select

    from backend.auth import current_user
    from backend.errors import not_found
    from backend.extensions import db
    from backend.models import Route, School, Teacher
    from backend.scopes import visible_route_ids
    from backend.subsidy_service import visible_teacher_ids

    user = current_user()
    if user.role not in ("logistics", "admin", "finance"):
        raise not_found("directory")
    teacher_ids, route_ids = visible_teacher_ids(user), visible_route_ids(user)
    teachers = [t for t in db.session.scalars(select(Teacher).order_by(Teacher.id))
                if teacher_ids is None or t.id in teacher_ids]
    routes = [r for r in db.session.scalars(select(Route).order_by(Route.id))
              if route_ids is None or r.id in route_ids]
    named = ({s.id for s in user.schools} | {t.home_school_id for t in teachers}
             | {a.school_id for t in teachers for a in t.assignments}
             | {r.school_id for r in routes if r.school_id})
    schools = [s for s in db.session.scalars(select(School).order_by(School.id))
               if user.role in ("admin", "finance") or s.id in named]
    response = jsonify({
        "teachers": [{"teacher_id": t.id, "name": t.name, "home_school_id": t.home_school_id}
                     for t in teachers],
        "routes": [{"route_id": r.id, "name": r.name, "school_id": r.school_id} for r in routes],
        "schools": [{"school_id": s.id, "name": s.name} for s in schools]})
    response.headers["Cache-Control"] = "private, no-store"
    return response
