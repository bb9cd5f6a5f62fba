/* The parents' page: for each child, the route with the bus on it, "the bus is about N minutes
 * from your stop", the stops, and the messages. Initial state from GET /api/v1/routes/{id}/live,
 * then live from /api/v1/stream (position, eta, notification). */
(function () {
  "use strict";

  const t = XC.t;
  const REFRESH_MS = 30000;  // /live again now and then: stop statuses, a trip that ended
  const DOWN_REFRESH_MS = 10000;  // ... more often while the stream is down
  const MIN_REFRESH_GAP_MS = 4000;
  const STALE_MS = 120000;  // a trip's position older than this is said to be old, and drawn so
  const cards = [];
  const notifications = [];
  const seen = {};
  const link = { stream: null, pollFailed: false, lastOk: null };  // the page's own connection

  if (!XC.requireLogin()) return;

  /* ---- state per child --------------------------------------------------------------- */
  function childStop(card) {
    if (!card.live) return null;
    return card.live.stops.find(function (s) { return s.stop_id === card.child.stop_id; }) || null;
  }
  function stopName(card, stopId) {
    const stop = card.live && card.live.stops.find(function (s) { return s.stop_id === stopId; });
    return stop ? stop.name : (card.child.stop_name || stopId || "");
  }
  function etaOf(card, stop) {
    if (card.etas && card.etaTrip === card.live.trip_id && stop.stop_id in card.etas) {
      return card.etas[stop.stop_id];
    }
    return stop.eta;
  }

  /** "下一班 16:30", "下一班 明天 06:50", "下一班 11月16日 06:50" (district time), or "". */
  function nextRunText(card) {
    const next = card.live && card.live.next_run;
    if (!next) return "";
    const today = XC.localDate(new Date().toISOString());
    let day = "";
    if (next.service_date !== today) {
      const tomorrow = XC.localDate(new Date(Date.now() + 86400000).toISOString());
      day = next.service_date === tomorrow ? t("parent.tomorrow") : XC.dateLabel(next.service_date);
    }
    return t("parent.nextRun", { when: (day ? day + " " : "") + XC.time(next.departs_at) });
  }

  /** The trip of today that is over, when no trip is in progress. */
  function finished(card) {
    return card.live && !card.live.active && card.live.last_trip ? card.live.last_trip : null;
  }

  /** Minutes since the trip's last position when that is older than STALE_MS, else 0. */
  function staleMinutes(card) {
    const p = card.live && card.live.active ? card.position : null;
    if (!p || !p.ts) return 0;
    const age = Date.now() - Date.parse(p.ts);
    return age > STALE_MS ? Math.floor(age / 60000) : 0;
  }

  /** The big line: "校车约6分钟后到达龙凤村", or why there is no such number. */
  function etaLine(card) {
    const stop = childStop(card);
    const name = stopName(card, card.child.stop_id);
    const done = finished(card);
    if (done) {  // the bus is at school (or the run's last stop): when it got there, and what next
      const stops = card.live.stops;
      const last = stops.length ? stops[stops.length - 1] : null;
      const when = XC.time(done.arrived_at_last_stop || done.completed_at);
      const school = last && last.stop_id === card.child.school_id;
      return { key: "done", text: school ? t("parent.doneSchool", { time: when })
                                         : t("parent.doneStop", { time: when, stop: last ? last.name : "" }),
               sub: nextRunText(card) };
    }
    if (!card.live || !card.live.active || !stop) {
      let sub = stop && stop.scheduled_at ? t("eta.scheduled", { time: XC.time(stop.scheduled_at), stop: name }) : "";
      if (!sub) sub = nextRunText(card);  // no run today
      return { key: "not-started", text: t("eta.notStarted"), sub: sub };
    }
    let sub = "";
    if (card.live.delay_s && card.live.delay_s >= 120) sub = t("eta.delay", { n: Math.round(card.live.delay_s / 60) });
    const asOf = card.position ? card.position.ts : null;
    if (asOf) sub = (sub ? sub + " · " : "") + t("eta.asOf", { time: XC.time(asOf) });
    if (stop.status === "visited") {
      return { key: "visited", text: t(stop.departed_at ? "eta.departed" : "eta.atStop", { stop: name }), sub: sub };
    }
    if (stop.status === "missed") return { key: "missed", text: t("eta.missed", { stop: name }), sub: sub };
    const eta = etaOf(card, stop);
    if (!eta) return { key: "en-route", text: t("eta.enRoute"), sub: sub };
    const minutes = Math.round((Date.parse(eta) - Date.now()) / 60000);
    if (minutes <= 0) return { key: "arriving", text: t("eta.arriving", { stop: name }), sub: sub };
    return { key: "minutes", text: t("eta.minutes", { n: minutes, stop: name }), sub: sub };
  }

  /* ---- drawing ----------------------------------------------------------------------- */
  function renderStops(card) {
    const list = card.el.querySelector(".stop-list");
    list.textContent = "";
    card.live.stops.forEach(function (stop) {
      const mine = stop.stop_id === card.child.stop_id;
      const next = card.live.active && stop.stop_id === card.live.next_stop_id;
      const li = XC.el("li", "stop " + stop.status + (mine ? " child-stop" : "") + (next ? " next" : ""));
      li.dataset.stopId = stop.stop_id;
      if (next) li.setAttribute("aria-current", "location");
      li.appendChild(XC.el("span", "stop-seq", String(stop.sequence + 1)));  // as on the map
      li.appendChild(XC.el("span", "stop-name", stop.name));
      if (mine) li.appendChild(XC.el("span", "badge mine", t("parent.yourStop")));
      const done = finished(card);
      let status = next ? t("status.next") : t("status." + stop.status);
      let when = "";
      if (done) {  // today's trip is over: the timetable below is not "to come" any more
        status = "";
        const lastStop = stop.sequence === card.live.stops.length - 1;
        if (lastStop && done.arrived_at_last_stop) when = t("stop.arrived", { time: XC.time(done.arrived_at_last_stop) });
      }
      if (stop.status === "visited" && stop.arrived_at) when = t("stop.arrived", { time: XC.time(stop.arrived_at) });
      else if (stop.status === "upcoming" && card.live.active && etaOf(card, stop)) when = t("stop.eta", { time: XC.time(etaOf(card, stop)) });
      else if (stop.scheduled_at && !done) when = t("stop.scheduled", { time: XC.time(stop.scheduled_at) });
      li.appendChild(XC.el("span", "stop-status", [status, when].filter(Boolean).join(" · ")));
      list.appendChild(li);
      if (card.map) card.map.setStatus(stop.stop_id, stop.status);
    });
  }

  function renderBus(card) {
    if (!card.map) return;
    const p = card.live && card.live.active ? card.position : null;
    if (!p) { card.map.hideBus(); return; }
    const moving = typeof p.speed_kmh === "number" && p.speed_kmh > 1;
    const stale = staleMinutes(card) > 0 || offline();
    card.map.setBus(p.lat, p.lon, moving && !stale ? p.heading_deg : null,
                    t("parent.bus") + " · " + t("eta.asOf", { time: XC.time(p.ts) }));
    card.map.setStale(stale);
  }

  /** "位置信息已 3 分钟未更新（最后定位 07:05）" while a trip's position is old. */
  function renderStale(card) {
    const el = card.el.querySelector(".stale-line");
    const minutes = staleMinutes(card);
    el.hidden = !minutes;
    el.textContent = minutes ? t("parent.stale", { n: minutes, time: XC.time(card.position.ts) }) : "";
    card.el.classList.toggle("stale", minutes > 0);
  }

  function renderCard(card) {
    const title = card.el.querySelector(".child-title");
    title.textContent = t("parent.childRoute", { name: card.child.name, route: card.live ? card.live.name : card.child.route_id });
    if (!card.live) return;
    const line = etaLine(card);
    const etaEl = card.el.querySelector(".eta-line");
    if (etaEl.textContent !== line.text) etaEl.textContent = line.text;
    etaEl.dataset.state = line.key;
    card.el.querySelector(".eta-sub").textContent = line.sub;
    const caption = t("parent.map", { route: card.live.name, n: card.live.stops.length,
                                      stop: stopName(card, card.child.stop_id) });
    card.el.querySelector(".map-caption").textContent = caption;
    if (card.map) {
      card.map.setCaption(caption);
      card.map.setNext(card.live.active ? card.live.next_stop_id : null);
    }
    renderStale(card);
    renderStops(card);
    renderBus(card);
  }

  function renderNotifications() {
    const list = document.getElementById("notifications");
    list.textContent = "";
    notifications.forEach(function (n) {
      const li = XC.el("li", "notification");
      li.dataset.kind = n.kind;
      const head = XC.el("p", "notification-head");
      head.appendChild(XC.el("strong", "notification-title", n.title));
      const when = XC.el("time", "notification-time", XC.time(n.created_at));
      when.dateTime = n.created_at;
      head.appendChild(when);
      li.appendChild(head);
      if (n.body) li.appendChild(XC.el("p", "notification-body", n.body));
      list.appendChild(li);
    });
    document.getElementById("no-notifications").hidden = notifications.length > 0;
  }

  function addNotifications(items) {
    items.forEach(function (n) {
      if (seen[n.id]) return;
      seen[n.id] = true;
      notifications.push(n);
    });
    notifications.sort(function (a, b) { return b.id - a.id; });
    notifications.splice(50);
    renderNotifications();
  }

  /* ---- loading ----------------------------------------------------------------------- */
  function newerPosition(a, b) {
    if (!a) return b;
    if (!b) return a;
    return Date.parse(b.ts) >= Date.parse(a.ts) ? b : a;
  }

  async function refreshLive(card, force) {
    const now = Date.now();
    if (card.loading || (!force && now - card.loadedAt < MIN_REFRESH_GAP_MS)) return;
    card.loading = true;
    try {
      const live = await XC.api("/api/v1/routes/" + encodeURIComponent(card.child.route_id) + "/live");
      card.loadedAt = Date.now();
      if (card.live && live.trip_id !== card.live.trip_id) card.etas = null;
      card.live = live;
      const streamed = card.position && card.position.trip_id === live.trip_id ? card.position : null;
      const polled = live.position ? Object.assign({ trip_id: live.trip_id }, live.position) : null;
      card.position = live.active ? newerPosition(streamed, polled) : null;
      link.pollFailed = false;
      link.lastOk = new Date().toISOString();
      XC.clearError();
      renderLink();
      renderCard(card);
    } catch (e) {
      if (e.status === 0) { link.pollFailed = true; renderLink(); cards.forEach(renderCard); }
      else XC.showError(e);
    } finally {
      card.loading = false;
    }
  }

  async function loadPath(card) {
    let path = null;
    try {
      path = (await XC.api("/pages/routes/" + encodeURIComponent(card.child.route_id) + "/path")).path;
    } catch (e) {
      if (e.status === 401) throw e;
    }
    const stops = card.live.stops;
    const mapEl = card.el.querySelector(".map-canvas");
    const options = { path: path || stops.map(function (s) { return [s.lat, s.lon]; }),
                      stops: stops, highlight: card.child.stop_id };
    if (XC.mapConfig()) {
      card.map = new XC.BaseMap(mapEl, options);  // roads under the route (XIAOCHE_MAP_TILES)
    } else {  // no base map configured: the schematic drawing, and a word why
      card.map = new XC.RouteMap(mapEl, options);
      const note = mapEl.appendChild(XC.el("p", "map-note", t("map.schematic")));
      note.dataset.i18n = "map.schematic";
    }
    if (!path) {  // the stops joined up, and a word why
      const hint = mapEl.appendChild(XC.el("p", "hint", t("err.path")));
      hint.dataset.i18n = "err.path";
    }
    if (card.map.placeLabels) card.map.placeLabels();  // clear of the notes just added
  }

  function newCard(child) {
    const el = document.getElementById("child-card").content.firstElementChild.cloneNode(true);
    XC.translate(el);
    el.dataset.routeId = child.route_id || "";
    el.dataset.studentId = child.student_id;
    return { child: child, el: el, live: null, position: null, etas: null, etaTrip: null,
             map: null, loadedAt: 0, loading: false };
  }

  /* ---- the page's own connection ------------------------------------------------------ */
  /** Offline: the stream is down and so is polling — what the page shows is as of lastOk. */
  function offline() { return link.stream === false && link.pollFailed; }

  function renderLink() {
    const el = document.getElementById("stream-status");
    if (offline()) {
      el.className = "stream-status offline";
      el.removeAttribute("data-i18n");
      el.textContent = link.lastOk ? t("parent.offlineSince", { time: XC.time(link.lastOk) })
                                   : t("parent.offline");
    } else if (link.stream !== null) {
      XC.streamStatus(link.stream);
    }
  }

  function onStreamStatus(live) {
    const was = link.stream;
    link.stream = live;
    renderLink();
    // the stream dropped: ask /live at once (a phone that lost its network learns it now)
    if (!live && was !== false) cards.forEach(function (c) { refreshLive(c, true); });
    if (live && was === false) cards.forEach(function (c) { refreshLive(c, true); });
  }

  /* ---- the reader's language: the account's (notifications are written in it) ------------ */
  async function syncLanguage() {
    let prefs;
    try { prefs = await XC.api("/api/v1/me/preferences"); } catch (e) { return; }
    if (XC.chosenLanguage()) {  // chosen in this browser (the toggle, here or on the login page)
      if (prefs.language !== XC.lang()) await saveLanguage(XC.lang(), prefs);
    } else if (prefs.language !== XC.lang()) {
      XC.setLanguage(prefs.language);
    }
  }

  async function saveLanguage(lang, prefs) {
    try {
      const current = prefs || await XC.api("/api/v1/me/preferences");
      if (current.language !== lang) {
        const body = Object.assign({}, current, { language: lang });  // PUT replaces them all
        await XC.api("/api/v1/me/preferences", { method: "PUT", body: body });
      }
      XC.languageSaved();
    } catch (e) {
      if (e.status !== 401) XC.showError(e);
    }
  }

  /* ---- live events ------------------------------------------------------------------- */
  function onPosition(data) {
    cards.forEach(function (card) {
      if (card.child.route_id !== data.route_id || !card.live) return;
      card.position = newerPosition(card.position, data);
      if (!card.live.active || data.trip_id !== card.live.trip_id) refreshLive(card, true);
      else renderCard(card);
    });
  }

  function onEta(data) {
    cards.forEach(function (card) {
      if (card.child.route_id !== data.route_id || !card.live) return;
      card.etas = {};
      data.stops.forEach(function (s) { card.etas[s.stop_id] = s.eta; });
      card.etaTrip = data.trip_id;
      const stop = childStop(card);
      const passed = stop && stop.status === "upcoming" && card.etas[stop.stop_id] === null;
      if (data.trip_id !== card.live.trip_id || passed) refreshLive(card, data.trip_id !== card.live.trip_id);
      else renderCard(card);
    });
  }

  async function main() {
    const me = await XC.api("/api/v1/me");
    if (me.role !== "parent") {
      if (XC.pageFor(me.role)) window.location.replace(XC.pageFor(me.role));
      else XC.showError({ key: "err.wrongRole", params: { role: me.role } });
      return;
    }
    await syncLanguage();
    const holder = document.getElementById("children");
    holder.textContent = "";
    if (!me.children.length) holder.appendChild(XC.el("p", "card empty", t("parent.noChildren")));
    me.children.forEach(function (child) {
      if (!child.route_id) {
        const p = XC.el("p", "card empty", t("parent.noRoute", { name: child.name }));
        holder.appendChild(p);
        return;
      }
      const card = newCard(child);
      cards.push(card);
      holder.appendChild(card.el);
    });
    await Promise.all(cards.map(async function (card) {
      await refreshLive(card, true);
      if (card.live) { await loadPath(card); renderCard(card); }
    }));
    XC.openStream({ position: onPosition, eta: onEta,
                    notification: function (n) { addNotifications([n]); } }, onStreamStatus);
    const body = await XC.api("/api/v1/me/notifications?limit=20");
    addNotifications(body.items);
    let polled = Date.now();
    window.setInterval(function () {
      const every = link.stream === false ? DOWN_REFRESH_MS : REFRESH_MS;
      if (Date.now() - polled < every - 500) return;
      polled = Date.now();
      cards.forEach(function (c) { refreshLive(c, false); });
    }, DOWN_REFRESH_MS / 2);
    window.addEventListener("online", function () { cards.forEach(function (c) { refreshLive(c, true); }); });
    window.setInterval(function () { cards.forEach(renderCard); }, 15000);  // "约N分钟" counts down
  }

  XC.onLanguage(function () {
    cards.forEach(renderCard);
    renderNotifications();
    renderLink();
  });
  // the toggle: new notifications come in the language chosen (what was sent stays as sent)
  document.getElementById("lang").addEventListener("click", function () { saveLanguage(XC.lang()); });
  main().catch(function (e) { XC.showError(e); });
})();
