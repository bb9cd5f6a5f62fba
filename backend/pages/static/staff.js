/* The staff console's first screen (logistics, admin): every vehicle they see — online, route,
 * trip, last seen — from GET /api/v1/vehicles/live, and the latest exceptions from
 * GET /api/v1/events. Positions on /api/v1/stream update the table at once; both lists are also
 * re-read every few seconds ("online" turns false by silence, which no event announces). A
 * vehicle's name opens its day (static/staff/day.js); the other screens are in static/staff/. */
(function () {
  "use strict";

  const t = XC.t;
  const KINDS = ["route_deviation_started", "overspeed", "stop_missed", "rider_wrong_bus",
                 "device_offline", "terminal_alarm"];
  const VEHICLES_EVERY_MS = 10000;
  const EXCEPTIONS_EVERY_MS = 20000;
  const SHOWN_EXCEPTIONS = 30;
  let vehicles = [];
  let exceptions = [];
  let updatedAt = null;
  let vehicleMap = null;  // with a base map (XIAOCHE_MAP_TILES): each vehicle where it is

  if (!XC.requireLogin()) return;

  /* ---- vehicles ---------------------------------------------------------------------- */
  const COLUMNS = ["staff.col.kind", "staff.col.status", "staff.col.route", "staff.col.trip",
                   "staff.col.lastSeen"];
  let column = 0;
  function cell(row, text, className) {  // labelled for the phone's cards, in column order
    return XC.staff.cell(row, COLUMNS[column++ % COLUMNS.length], text, className);
  }

  function renderVehicles() {
    const body = document.querySelector("#vehicles tbody");
    body.textContent = "";
    if (!vehicles.length) {
      const row = XC.el("tr");
      const none = XC.el("td", "empty", t("staff.noVehicles"));
      none.colSpan = 6;
      row.appendChild(none);
      body.appendChild(row);
    }
    vehicles.forEach(function (v) {
      const row = XC.el("tr", v.online ? "online" : "offline");
      row.dataset.vehicleId = v.vehicle_id;
      const name = XC.el("th", "vehicle");
      name.scope = "row";
      name.dataset.labelKey = "staff.col.vehicle";  // the phone's card says what it is
      name.dataset.label = t("staff.col.vehicle");
      const open = XC.el("button", "link", v.vehicle_id);  // its day: track, stops, replay
      open.type = "button";
      open.dataset.vehicleId = v.vehicle_id;
      open.addEventListener("click", function () { XC.staff.go("day", { vehicle: v.vehicle_id }); });
      name.appendChild(open);
      if (v.plate) name.appendChild(XC.el("span", "plate", v.plate));
      row.appendChild(name);
      column = 0;
      cell(row, t("kind." + v.kind));
      const status = cell(row, "", "status");
      status.appendChild(XC.el("span", "badge " + (v.online ? "ok" : "off"),
                               t(v.online ? "staff.online" : "staff.offline")));
      cell(row, v.route_id || t("staff.noTrip"), "route");
      cell(row, v.trip_id || t("staff.noTrip"), "trip");
      const seen = cell(row, "", "last-seen");
      if (v.last_seen) {
        const when = XC.el("time", "", XC.ago(v.last_seen) + " · " + XC.time(v.last_seen));
        when.dateTime = v.last_seen;
        seen.appendChild(when);
      } else {
        seen.textContent = t("staff.never");
      }
      body.appendChild(row);
    });
    const stamp = document.getElementById("vehicles-updated");
    stamp.textContent = updatedAt ? t("staff.updated", { time: XC.time(updatedAt) }) : "";
    renderVehicleMap();
  }

  function vehicleLabel(v) {  // what the marker says: which, what, online, route, speed
    const parts = [v.vehicle_id, t("kind." + v.kind), t(v.online ? "staff.online" : "staff.offline")];
    if (v.route_id) parts.push(v.route_id);
    if (v.online && v.position && typeof v.position.speed_kmh === "number") {
      parts.push(Math.round(v.position.speed_kmh) + " km/h");
    }
    return parts.join(" · ");
  }

  /* Without a base map: the schematic — the routes the user sees and each vehicle on them. */
  let schematic = null;
  let routePaths = null;  // [{route_id, path}] once fetched
  async function loadRoutePaths() {
    const dir = await XC.staff.directory();
    routePaths = await Promise.all(dir.routes.map(function (r) {
      return XC.api("/pages/routes/" + encodeURIComponent(r.route_id) + "/path");
    }));
    renderVehicleMap();
  }
  function renderSchematic(holder) {
    if (routePaths === null) { routePaths = []; loadRoutePaths().catch(XC.showError); return; }
    const placed = vehicles.filter(function (v) { return v.position; });
    if (!placed.length && !routePaths.length) return;
    if (!schematic) schematic = new XC.TrackMap(holder);
    schematic.draw({
      lines: routePaths.map(function (r) { return { points: r.path, className: "planned" }; }),
      marks: placed.map(function (v) {
        return { id: v.vehicle_id, lat: v.position.lat, lon: v.position.lon, labelled: true,
                 className: "vehicle " + v.kind + (v.online ? " online" : " offline"),
                 label: vehicleLabel(v) };
      }),
      caption: t("staff.map") });
  }

  function renderVehicleMap() {
    const sketch = document.getElementById("vehicle-schematic");
    if (sketch) renderSchematic(sketch);
    const holder = document.getElementById("vehicle-map");
    if (!holder || !XC.mapConfig()) return;
    if (!vehicleMap) vehicleMap = new XC.BaseMap(holder);
    vehicles.forEach(function (v) {
      if (!v.position) return;
      const label = vehicleLabel(v);
      vehicleMap.setVehicle(v.vehicle_id, v.position.lat, v.position.lon, v.kind, v.online, label);
    });
    vehicleMap.fitVehicles();
  }

  async function loadVehicles() {
    try {
      vehicles = await XC.api("/api/v1/vehicles/live");
      updatedAt = new Date().toISOString();
      XC.clearError();
      renderVehicles();
      if (XC.staff.texts) XC.staff.texts.vehicles();  // the texts form picks from these
    } catch (e) {
      XC.showError(e);
    }
  }

  function onPosition(data) {
    const v = vehicles.find(function (x) { return x.vehicle_id === data.vehicle_id; });
    if (!v) return;
    v.online = true;
    v.last_seen = data.ts;
    v.route_id = data.route_id;
    v.trip_id = data.trip_id;
    v.position = data;
    renderVehicles();
  }

  /* ---- exceptions -------------------------------------------------------------------- */
  function detail(e) {
    const d = e.details || {};
    if (e.kind === "overspeed" && d.max_speed_kmh !== undefined) {
      return t("detail.overspeed", { max: Math.round(d.max_speed_kmh), limit: d.limit_kmh });
    }
    if (e.kind === "route_deviation_started" && d.max_offset_m !== undefined) {
      return t("detail.deviation", { m: Math.round(d.max_offset_m) });
    }
    if (e.kind === "device_offline" && d.silent_s !== undefined) {
      return t("detail.offline", { n: Math.round(d.silent_s / 60) });
    }
    if (e.kind === "rider_wrong_bus") {
      return t("detail.wrongBus", { name: d.student_name || d.student_id || "", route: d.expected_route_id || "" });
    }
    if (e.kind === "terminal_alarm" && d.alarm) {  // the terminal's own alarm (JT/T 808)
      const speed = typeof d.speed_kmh === "number" ? " · " + Math.round(d.speed_kmh) + " km/h" : "";
      return t("alarm." + d.alarm) + speed;
    }
    if (e.stop_id) return t("detail.stop", { stop: e.stop_id });
    return "";
  }

  function renderExceptions() {
    const list = document.getElementById("exceptions");
    list.textContent = "";
    exceptions.forEach(function (e) {
      const li = XC.el("li", "exception " + e.kind);
      li.dataset.kind = e.kind;
      li.dataset.vehicleId = e.vehicle_id || "";
      const when = XC.el("time", "exception-time", XC.time(e.ts));
      when.dateTime = e.ts;
      li.appendChild(when);
      li.appendChild(XC.el("strong", "exception-kind", t("event." + e.kind)));
      const where = [e.vehicle_id, e.route_id].filter(Boolean).join(" · ");
      li.appendChild(XC.el("span", "exception-where", where));
      const text = detail(e);
      if (text) li.appendChild(XC.el("span", "exception-detail", text));
      list.appendChild(li);
    });
    document.getElementById("no-exceptions").hidden = exceptions.length > 0;
  }

  async function loadExceptions() {
    try {
      const pages = await Promise.all(KINDS.map(function (kind) {
        return XC.api("/api/v1/events?kind=" + encodeURIComponent(kind) + "&limit=" + SHOWN_EXCEPTIONS);
      }));
      exceptions = pages.reduce(function (all, page) { return all.concat(page.items); }, [])
        .sort(function (a, b) { return Date.parse(b.ts) - Date.parse(a.ts) || b.id - a.id; })
        .slice(0, SHOWN_EXCEPTIONS);
      renderExceptions();
    } catch (e) {
      XC.showError(e);
    }
  }

  async function main() {
    const me = await XC.api("/api/v1/me");
    if (!XC.isStaff(me.role)) {
      if (XC.pageFor(me.role)) window.location.replace(XC.pageFor(me.role));
      else XC.showError({ key: "err.wrongRole", params: { role: me.role } });
      return;
    }
    XC.staff.start(me);  // the screen the address names (#ledger, #audit, #day…)
    if (me.role === "finance") return;  // the finance office's screen reads no vehicles
    await Promise.all([loadVehicles(), loadExceptions()]);
    XC.openStream({ position: onPosition, notification: loadExceptions }, XC.streamStatus);
    window.setInterval(loadVehicles, VEHICLES_EVERY_MS);
    window.setInterval(loadExceptions, EXCEPTIONS_EVERY_MS);
  }

  XC.staff.vehicles = function () { return vehicles; };
  XC.staff.screen("vehicles", {
    resize: function () { if (vehicleMap) vehicleMap.map.invalidateSize(); } });
  XC.onLanguage(function () { renderVehicles(); renderExceptions(); });
  // After every deferred script has run: the screens (finance.js, plans.js…) load after this file,
  // and /api/v1/me could answer before they had registered, leaving the screen blank.
  function begin() { main().catch(function (e) { XC.showError(e); }); }
  // (a deferred script runs while readyState is already "interactive", before DOMContentLoaded)
  if (document.readyState === "complete") begin();
  else document.addEventListener("DOMContentLoaded", begin);
})();
