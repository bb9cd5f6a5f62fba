/* The trip audit (行程审计) of a date: every run GET /api/v1/audit/trips?date= lists — scheduled
 * against actual per stop, missed and unobserved stops, lateness, corridor deviations —
 * filtered by route and kind of exception; a run drawn on the map (its planned route from
 * /pages/routes/{id}/path, stops with their audited status from /api/v1/routes/{id}/live, the
 * driven track from /api/v1/trips/{id}/track with the deviations over it); the shown rows as CSV. */
(function () {
  "use strict";

  const S = XC.staff;
  const t = XC.t;
  const LATE_S = 300;  // "late" in the filter: five minutes behind the timetable or more
  let dir = null;
  let trips = [];
  let shown = null;   // trip_id drawn on the map
  let map = null;
  const routes = {};  // route_id -> {path, stops} (cached)

  const $ = function (id) { return document.getElementById(id); };

  function kinds(trip) {
    const out = [];
    if (trip.stops.some(function (s) { return s.status === "missed"; })) out.push("missed");
    if (trip.stops.some(function (s) { return s.status === "unobserved"; })) out.push("unobserved");
    if (trip.deviations.length) out.push("deviation");
    if (trip.stops.some(function (s) { return s.late_s !== null && s.late_s >= LATE_S; })) out.push("late");
    return out;
  }

  function schoolOf(routeId) {
    const r = dir.routes.find(function (x) { return x.route_id === routeId; });
    return r ? r.school_id : null;
  }

  function filtered() {
    const kind = $("audit-kind").value;
    const school = $("audit-school").value;
    return trips.filter(function (trip) {
      const k = kinds(trip);
      return (!school || schoolOf(trip.route_id) === school) &&
        (!kind || (kind === "any" ? k.length > 0 : k.indexOf(kind) >= 0));
    });
  }

  async function route(routeId) {
    if (!routes[routeId]) {
      routes[routeId] = Promise.all([
        XC.api("/pages/routes/" + encodeURIComponent(routeId) + "/path"),
        XC.api("/api/v1/routes/" + encodeURIComponent(routeId) + "/live"),
      ]).then(function (r) { return { path: r[0].path, name: r[0].name, stops: r[1].stops }; });
    }
    return routes[routeId];
  }

  async function load() {
    dir = await S.directory();
    const select = $("audit-route");
    if (select.options.length === 1) {
      dir.routes.forEach(function (r) {
        const o = XC.el("option", "", r.name);
        o.value = r.route_id;
        select.appendChild(o);
      });
    }
    const schools = $("audit-school");
    if (schools.options.length === 1) {
      dir.schools.filter(function (x) {  // the schools that have a route the user sees
        return dir.routes.some(function (r) { return r.school_id === x.school_id; });
      }).forEach(function (x) {
        const o = XC.el("option", "", x.name);
        o.value = x.school_id;
        schools.appendChild(o);
      });
    }
    const date = $("audit-date").value;
    const routeId = select.value;
    trips = await XC.api("/api/v1/audit/trips?date=" + date + (routeId ? "&route_id=" + encodeURIComponent(routeId) : ""));
    await Promise.all(trips.map(function (trip) { return route(trip.route_id); }));
    const names = {};
    for (const trip of trips) {
      (await route(trip.route_id)).stops.forEach(function (s) { names[s.stop_id] = s.name; });
    }
    S.stopNames = Object.assign(S.stopNames || {}, names);
    render();
    const list = filtered();  // keep the trip on the map if still listed, else the first with exceptions
    const pick = list.find(function (x) { return x.trip_id === shown; }) ||
      list.find(function (x) { return kinds(x).length; }) || list[0];
    if (pick) await draw(pick);
  }

  function stopName(id) { return (S.stopNames && S.stopNames[id]) || id; }

  function render() {
    const holder = $("audit-trips");
    holder.textContent = "";
    const list = filtered();
    $("audit-count").textContent = t("audit.count", { n: list.length, all: trips.length });
    if (!list.length) holder.appendChild(XC.el("p", "card empty", t("audit.none")));
    list.forEach(function (trip) {
      const card = XC.el("section", "card audit-trip" + (trip.trip_id === shown ? " shown" : ""));
      card.dataset.tripId = trip.trip_id;
      card.dataset.kinds = kinds(trip).join(" ");
      card.appendChild(XC.el("h3", "", S.routeName(dir, trip.route_id) + " · " + trip.vehicle_id));
      card.appendChild(XC.el("p", "facts", t("audit.facts", {
        from: XC.time(trip.started_at), to: trip.completed_at ? XC.time(trip.completed_at) : "—",
        km: trip.distance_km === null ? "—" : trip.distance_km.toFixed(1),
        speed: trip.max_speed_kmh === null ? "—" : Math.round(trip.max_speed_kmh) })));
      const badges = XC.el("p", "badges");
      kinds(trip).forEach(function (k) { badges.appendChild(XC.el("span", "badge warn", t("audit.kind." + k))); badges.append(" "); });
      if (!kinds(trip).length) badges.appendChild(XC.el("span", "badge ok", t("audit.clean")));
      card.appendChild(badges);
      const table = XC.el("table", "cards-on-phone audit-stops");
      const head = XC.el("tr");
      ["audit.col.stop", "audit.col.scheduled", "audit.col.actual", "audit.col.late", "audit.col.status"]
        .forEach(function (k) { head.appendChild(XC.el("th", "", t(k))).scope = "col"; });
      table.appendChild(XC.el("thead")).appendChild(head);
      const body = table.appendChild(XC.el("tbody"));
      trip.stops.forEach(function (s) {
        const row = XC.el("tr", s.status);
        row.dataset.stopId = s.stop_id;
        const name = S.cell(row, "audit.col.stop", stopName(s.stop_id), "", "th");
        name.scope = "row";
        S.cell(row, "audit.col.scheduled", XC.time(s.scheduled_at) || "—");
        S.cell(row, "audit.col.actual", s.arrived_at ? XC.time(s.arrived_at) : "—");
        S.cell(row, "audit.col.late", s.late_s === null ? "—" : s.late_s < -30
          ? t("audit.earlyMin", { n: Math.round(-s.late_s / 60) }) : t("audit.lateMin", { n: Math.round(s.late_s / 60) }),
               s.late_s !== null && s.late_s >= LATE_S ? "late" : "");
        S.cell(row, "audit.col.status", t("audit.status." + s.status), "status " + s.status);
        body.appendChild(row);
      });
      card.appendChild(table);
      trip.deviations.forEach(function (d) {
        card.appendChild(XC.el("p", "deviation-line", t("audit.deviation", {
          from: XC.time(d.started_at), to: d.ended_at ? XC.time(d.ended_at) : "—",
          m: d.max_offset_m === null ? "—" : Math.round(d.max_offset_m) })));
      });
      const show = XC.el("button", "secondary show-on-map", t("audit.showOnMap"));
      show.type = "button";
      show.addEventListener("click", function () { draw(trip).catch(XC.showError); });
      card.appendChild(show);
      holder.appendChild(card);
    });
  }

  async function draw(trip) {
    shown = trip.trip_id;
    document.querySelectorAll(".audit-trip").forEach(function (c) {
      c.classList.toggle("shown", c.dataset.tripId === shown);
    });
    const r = await route(trip.route_id);
    const track = await XC.api("/api/v1/trips/" + encodeURIComponent(trip.trip_id) + "/track");
    const coords = track.geometry ? track.geometry.coordinates : [];
    const times = (track.properties.times || []).map(Date.parse);
    const points = coords.map(function (c) { return [c[1], c[0]]; });
    const lines = [{ points: r.path, className: "planned" }, { points: points, className: "actual" }];
    trip.deviations.forEach(function (d) {
      const from = Date.parse(d.started_at), to = d.ended_at ? Date.parse(d.ended_at) : Infinity;
      lines.push({ className: "deviation", points: points.filter(function (p, i) {
        return times[i] >= from && times[i] <= to; }) });
    });
    const status = {};
    trip.stops.forEach(function (s) { status[s.stop_id] = s.status; });
    const marks = r.stops.map(function (s, i) {
      const st = status[s.stop_id] || "upcoming";
      return { id: s.stop_id, lat: s.lat, lon: s.lon, className: "stop " + st,
               label: s.name + " · " + t("audit.status." + st),
               labelled: st === "missed" || st === "unobserved" || i === 0 || i === r.stops.length - 1 };
    });
    if (!map) map = new XC.TrackMap($("audit-map"));
    map.draw({ lines: lines, marks: marks,
               caption: t("audit.mapCaption", { route: r.name, vehicle: trip.vehicle_id }) });
    $("audit-map").dataset.tripId = trip.trip_id;
  }

  function exportCsv() {
    const rows = [["trip_id", "route_id", "route", "vehicle_id", "stop_id", "stop", "scheduled_at",
                   "arrived_at", "departed_at", "status", "late_s", "deviations"]];
    filtered().forEach(function (trip) {
      trip.stops.forEach(function (s) {
        rows.push([trip.trip_id, trip.route_id, S.routeName(dir, trip.route_id), trip.vehicle_id,
                   s.stop_id, stopName(s.stop_id), s.scheduled_at, s.arrived_at, s.departed_at,
                   s.status, s.late_s, trip.deviations.length]);
      });
    });
    S.save(S.csv(rows), "trip-audit-" + $("audit-date").value + ".csv");
  }

  $("audit-date").addEventListener("change", function () { if (this.value) load().catch(XC.showError); });
  $("audit-route").addEventListener("change", function () { load().catch(XC.showError); });
  $("audit-kind").addEventListener("change", render);
  $("audit-school").addEventListener("change", render);
  $("audit-csv").addEventListener("click", exportCsv);

  S.screen("audit", {
    show: function (params) {
      if (params.date) $("audit-date").value = params.date;
      if (!$("audit-date").value) $("audit-date").value = S.today();
      return load();
    },
    resize: function () { if (map) map.resize(); },
  });
  XC.onLanguage(function () {
    if (!dir) return;
    render();
    const trip = trips.find(function (x) { return x.trip_id === shown; });
    if (trip) draw(trip).catch(XC.showError);
  });
})();
