/* The plan screen (线路规划; admin): POST /api/v1/plans plans routes and buses from the stored
 * district's stops, students and school buses — the longest ride, the time to compute and the
 * seats as the form gives them — and answers a report (buses, routes, km and empty km, longest
 * ride, children per bus, seats, travel model) and a draft bundle, storing nothing. While it runs
 * the page shows how long it has been at it; then the report, the draft routes on the map (the
 * routes screen's map code, static/staff/trackmap.js, one colour per route) and listed with
 * their bus and times, and a button that saves the draft bundle as JSON for review and import.
 * A 422 (the district cannot be planned so) is said in the page. */
(function () {
  "use strict";

  const S = XC.staff;
  const t = XC.t;
  const $ = function (id) { return document.getElementById(id); };
  let plan = null;
  let dir = null;
  let map = null;
  let ticking = null;

  function progress(on, limit) {
    $("plan-progress").hidden = !on;
    $("plan-run").disabled = on;
    window.clearInterval(ticking);
    if (!on) return;
    const started = Date.now();
    const say = function () {
      $("plan-progress-text").textContent = t("plans.running", {
        s: Math.floor((Date.now() - started) / 1000), limit: limit });
    };
    say();
    ticking = window.setInterval(say, 1000);
  }

  $("plan-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const body = { max_ride_min: Number($("plan-max-ride").value),
                   time_limit_s: Number($("plan-time-limit").value) };
    if ($("plan-seats").value) body.seats = Number($("plan-seats").value);
    $("plan-error").hidden = true;
    progress(true, body.time_limit_s);
    try {
      dir = await S.directory();
      plan = await XC.api("/api/v1/plans", { method: "POST", body: body });
      render();
    } catch (e) {
      $("plan-error").textContent = S.problem(e);
      $("plan-error").hidden = false;
    } finally {
      progress(false);
    }
  });

  function pair(list, key, value) {
    const dt = XC.el("dt", "", t(key));
    const dd = XC.el("dd", "", value);
    dd.dataset.item = key.split(".")[1];
    list.append(dt, dd);
  }

  function render() {
    if (!plan) return;
    const r = plan.report;
    $("plan-result").hidden = false;
    const list = $("plan-report");
    list.textContent = "";
    pair(list, "plans.buses", String(r.buses));
    pair(list, "plans.routes", String(r.routes));
    pair(list, "plans.km", t("plans.kmValue", { km: r.km.toFixed(1) }));
    pair(list, "plans.emptyKm", t("plans.kmValue", { km: r.empty_km.toFixed(1) }));
    pair(list, "plans.longest", t("plans.minValue", { min: r.longest_ride_min.toFixed(1) }));
    pair(list, "plans.perBus", r.children_per_bus.join(" · "));
    pair(list, "plans.seatsUsed", String(r.seats));
    pair(list, "plans.travel", r.travel);

    const draft = plan.draft;
    const stops = {};
    draft.stops.forEach(function (s) { stops[s.id] = s; });
    const routes = $("plan-routes");
    routes.textContent = "";
    draft.routes.forEach(function (route, n) {
      const run = route.runs[0];
      const li = XC.el("li", "plan-route draft-" + (n % 4));
      li.dataset.routeId = route.id;
      li.textContent = t("plans.route", { name: route.name, bus: run.vehicle_id, n: route.stops.length - 1,
                                          first: run.times[0], last: run.times[run.times.length - 1] });
      routes.appendChild(li);
    });
    if (!map) map = new XC.TrackMap($("plan-map"));
    map.draw({
      lines: draft.routes.map(function (route, n) {
        return { points: route.path.coordinates.map(function (c) { return [c[1], c[0]]; }),
                 className: "draft draft-" + (n % 4) };
      }),
      marks: draft.stops.map(function (s) {
        return { id: s.id, lat: s.lat, lon: s.lon, className: "stop", label: s.name, labelled: true };
      }).concat(draft.routes.map(function (route) {  // where each route ends: its school
        const end = route.path.coordinates[route.path.coordinates.length - 1];
        return { id: route.school_id, lat: end[1], lon: end[0], className: "school",
                 label: S.schoolName(dir, route.school_id), labelled: true };
      })),
      caption: t("plans.report") });
  }

  $("plan-download").addEventListener("click", function () {
    if (!plan) return;
    const blob = new Blob([JSON.stringify(plan.draft, null, 2) + "\n"], { type: "application/json" });
    S.save(blob, "plan-draft-" + S.today() + ".json");
  });

  S.screen("plans", {
    show: function () {},
    resize: function () { if (map) map.resize(); },
  });
  XC.onLanguage(function () { render(); });
})();
