/* A vehicle's day (车辆轨迹): its stored pings of a local date
 * (GET /api/v1/vehicles/{id}/track?since=&until=) drawn on the map, its stop arrivals, missed
 * stops, deviations and overspeed from GET /api/v1/events marked on it and listed, and a time
 * slider that replays the day: the cursor goes where the vehicle was at that ping. CSV of the
 * pings from the API (?format=csv). */
(function () {
  "use strict";

  const S = XC.staff;
  const t = XC.t;
  const KINDS = ["stop_arrived", "stop_missed", "overspeed", "route_deviation_started",
                 "route_deviation_ended", "trip_started", "trip_completed", "meal_delivery_arrived", "teacher_trip_completed"];
  const MARKED = { stop_arrived: "arrival", overspeed: "overspeed", stop_missed: "missed",
                   route_deviation_started: "deviation-start" };
  const PLAY_MS = 80;
  let map = null;
  let points = [];  // [lat, lon]
  let times = [];   // epoch ms
  let speeds = [];
  let events = [];
  let playing = null;
  let vehicleList = null;

  const $ = function (id) { return document.getElementById(id); };

  async function fillVehicles(wanted) {
    if (!vehicleList) vehicleList = await XC.api("/api/v1/vehicles/live");
    const select = $("day-vehicle");
    if (!select.options.length) {
      vehicleList.forEach(function (v) {
        const o = XC.el("option", "", v.vehicle_id + " · " + t("kind." + v.kind));
        o.value = v.vehicle_id;
        select.appendChild(o);
      });
    }
    if (wanted) select.value = wanted;
  }

  function nearest(ms) {  // index of the last ping at or before ms
    let lo = 0, hi = times.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (times[mid] <= ms) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  async function load() {
    stop();
    const vehicleId = $("day-vehicle").value;
    const date = $("day-date").value;
    if (!vehicleId || !date) return;
    const w = S.dayWindow(date);
    const window_ = "since=" + w[0] + "&until=" + w[1];
    const id = encodeURIComponent(vehicleId);
    const answers = await Promise.all([XC.api("/api/v1/vehicles/" + id + "/track?" + window_)]
      .concat(KINDS.map(function (k) {
        return XC.api("/api/v1/events?vehicle_id=" + id + "&kind=" + k + "&limit=1000&" + window_);
      })));
    const track = answers[0];
    points = track.geometry ? track.geometry.coordinates.map(function (c) { return [c[1], c[0]]; })
      : [];
    times = track.properties.times.map(Date.parse).slice(0, points.length);
    speeds = (track.properties.speeds_kmh || []).slice(0, points.length);
    events = answers.slice(1).reduce(function (all, page) { return all.concat(page.items); }, [])
      .sort(function (a, b) { return Date.parse(a.ts) - Date.parse(b.ts); });
    await names(events);
    draw(vehicleId);
  }

  /** Stop and school names for the events: the routes' stops (as /routes/{id}/live lists them)
   * and the caller's schools. */
  async function names(list) {
    const dir = await S.directory();
    S.stopNames = S.stopNames || {};
    dir.schools.forEach(function (s) { S.stopNames[s.school_id] = s.name; });
    const routeIds = list.map(function (e) { return e.route_id; }).filter(function (id, i, all) {
      return id && all.indexOf(id) === i && dir.routes.some(function (r) { return r.route_id === id; });
    });
    const lives = await Promise.all(routeIds.map(function (id) {
      return XC.api("/api/v1/routes/" + encodeURIComponent(id) + "/live");
    }));
    lives.forEach(function (live) {
      live.stops.forEach(function (s) { S.stopNames[s.stop_id] = s.name; });
    });
  }

  function at(ms) {  // where the vehicle was at ms, [lat, lon]
    return points[nearest(ms)];
  }

  function eventText(e) {
    const d = e.details || {};
    const stop = e.stop_id ? (S.stopNames && S.stopNames[e.stop_id]) || e.stop_id : "";
    let text = t("dayEvent." + e.kind, { stop: stop });
    if (e.kind === "overspeed" && d.max_speed_kmh !== undefined) {
      text += " · " + t("detail.overspeed", { max: Math.round(d.max_speed_kmh), limit: d.limit_kmh });
    }
    return text;
  }

  function draw(vehicleId) {
    if (!map) map = new XC.TrackMap($("day-map"));
    const marks = [];
    events.forEach(function (e) {
      const cls = MARKED[e.kind];
      if (!cls || !points.length) return;
      const p = at(Date.parse(e.ts));
      marks.push({ id: "event-" + e.id, lat: p[0], lon: p[1], className: cls,
                   label: XC.time(e.ts) + " " + eventText(e), labelled: e.kind === "stop_missed" });
    });
    const lines = [{ points: points, className: "actual" }];
    events.forEach(function (e, i) {  // each deviation, dashed red over the track
      if (e.kind !== "route_deviation_started") return;
      const end = events.slice(i + 1).find(function (x) { return x.kind === "route_deviation_ended"; });
      const from = Date.parse(e.ts), to = end ? Date.parse(end.ts) : Infinity;
      lines.push({ className: "deviation", points: points.filter(function (p, k) {
        return times[k] >= from && times[k] <= to; }) });
    });
    map.draw({ lines: lines, marks: marks,
               caption: t("day.caption", { vehicle: vehicleId, date: $("day-date").value }) });
    $("day-replay").hidden = points.length === 0;
    const slider = $("day-slider");
    slider.max = String(Math.max(points.length - 1, 0));
    slider.value = "0";
    $("day-summary").textContent = points.length
      ? t("day.summary", { n: points.length, from: XC.time(new Date(times[0]).toISOString()),
                           to: XC.time(new Date(times[times.length - 1]).toISOString()),
                           max: Math.round(Math.max.apply(null, speeds.map(Number).filter(isFinite).concat([0]))) })
      : t("day.noTrack");
    if (points.length) move(0);
    const list = $("day-events");
    list.textContent = "";
    events.forEach(function (e) {
      const li = XC.el("li", "exception " + e.kind);
      li.dataset.kind = e.kind;
      li.tabIndex = 0;
      const when = XC.el("time", "exception-time", XC.time(e.ts));
      when.dateTime = e.ts;
      li.append(when, XC.el("span", "", eventText(e)));
      const jump = function () { if (points.length) move(nearest(Date.parse(e.ts))); };
      li.addEventListener("click", jump);
      li.addEventListener("keydown", function (ev) { if (ev.key === "Enter") jump(); });
      list.appendChild(li);
    });
    $("day-no-events").hidden = events.length > 0;
  }

  function move(i) {
    const slider = $("day-slider");
    slider.value = String(i);
    const iso = new Date(times[i]).toISOString();
    const speed = speeds[i] === null || speeds[i] === undefined ? "—" : Math.round(speeds[i]);
    const label = t("day.at", { time: XC.time(iso), speed: speed });
    $("day-at").textContent = label;
    slider.setAttribute("aria-valuetext", label);
    map.setCursor(points[i][0], points[i][1], label);
  }

  function stop() {
    if (playing !== null) window.clearInterval(playing);
    playing = null;
    $("day-play").textContent = t("day.play");
    $("day-play").dataset.i18n = "day.play";
  }

  $("day-slider").addEventListener("input", function () { stop(); move(parseInt(this.value, 10)); });
  $("day-play").addEventListener("click", function () {
    if (playing !== null) { stop(); return; }
    const slider = $("day-slider");
    if (+slider.value >= +slider.max) move(0);
    $("day-play").textContent = t("day.pause");
    $("day-play").dataset.i18n = "day.pause";
    playing = window.setInterval(function () {
      const next = +slider.value + 1;
      if (next > +slider.max) { stop(); return; }
      move(next);
    }, PLAY_MS);
  });
  $("day-vehicle").addEventListener("change", function () { load().catch(XC.showError); });
  $("day-date").addEventListener("change", function () { if (this.value) load().catch(XC.showError); });
  $("day-csv").addEventListener("click", function () {
    const id = $("day-vehicle").value, w = S.dayWindow($("day-date").value);
    if (!id) return;
    S.download("/api/v1/vehicles/" + encodeURIComponent(id) + "/track?format=csv&since=" + w[0] +
               "&until=" + w[1], "text/csv", "track-" + id + "-" + $("day-date").value + ".csv")
      .catch(XC.showError);
  });

  S.screen("day", {
    show: async function (params) {
      if (params.date) $("day-date").value = params.date;
      if (!$("day-date").value) $("day-date").value = S.today();
      await fillVehicles(params.vehicle);
      return load();
    },
    resize: function () { if (map) map.resize(); },
  });
  XC.onLanguage(function () {
    if (map && $("day-vehicle").value) {
      const i = +$("day-slider").value;
      draw($("day-vehicle").value);
      if (points.length) move(i);
    }
  });
})();
