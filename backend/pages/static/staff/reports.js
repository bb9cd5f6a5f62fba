/* Reports (报告): the ETA accuracy of a date per route (GET /api/v1/audit/eta?date=) — mean
 * absolute error 1, 3 and 5 stops ahead next to the timetable + current-delay baseline — and,
 * for admins, what ingest refused and why (GET /api/v1/admin/rejects), counted by reason. */
(function () {
  "use strict";

  const S = XC.staff;
  const t = XC.t;
  const $ = function (id) { return document.getElementById(id); };
  let eta = [];
  let rejects = null;
  let dir = null;

  function minutes(s) { return s === null || s === undefined ? "—" : (s / 60).toFixed(1); }

  async function load() {
    dir = await S.directory();
    const asks = [XC.api("/api/v1/audit/eta?date=" + $("eta-date").value)];
    if (XC.role() === "admin") asks.push(XC.api("/api/v1/admin/rejects?limit=50"));
    const answers = await Promise.all(asks);
    eta = answers[0];
    rejects = answers[1] || null;
    render();
  }

  function render() {
    const body = document.querySelector("#eta tbody");
    body.textContent = "";
    if (!eta.length) {
      const row = XC.el("tr");
      const none = XC.el("td", "empty", t("reports.noEta"));
      none.colSpan = 5;
      row.appendChild(none);
      body.appendChild(row);
    }
    eta.forEach(function (r) {
      const row = XC.el("tr");
      row.dataset.routeId = r.route_id;
      const name = S.cell(row, "reports.col.route", S.routeName(dir, r.route_id), "", "th");
      name.scope = "row";
      S.cell(row, "reports.col.trips", String(r.trips), "num");
      [1, 3, 5].forEach(function (n) {
        const ahead = r.stops_ahead.find(function (a) { return a.stops === n; });
        S.cell(row, "reports.col.ahead" + n, ahead
          ? t("reports.mae", { mae: minutes(ahead.mae_s), base: minutes(ahead.baseline_mae_s), n: ahead.predictions })
          : "—", "num ahead-" + n);
      });
      body.appendChild(row);
    });
    const card = $("rejects-card");
    card.hidden = rejects === null;
    if (!rejects) return;
    const counts = $("reject-counts");
    counts.textContent = "";
    Object.keys(rejects.counts).sort(function (a, b) { return rejects.counts[b] - rejects.counts[a]; })
      .forEach(function (reason) {
        const li = XC.el("li", "", reason + " · " + rejects.counts[reason]);
        li.dataset.reason = reason;
        counts.appendChild(li);
      });
    const list = $("reject-items");
    list.textContent = "";
    rejects.items.forEach(function (r) {
      const li = XC.el("li", "exception");
      li.dataset.reason = r.reason;
      const when = XC.el("time", "exception-time", S.dateTime(r.received_at));
      when.dateTime = r.received_at;
      li.append(when, XC.el("strong", "exception-kind", r.reason),
                XC.el("span", "exception-where", r.device_id || r.topic || ""),
                XC.el("span", "exception-detail", r.detail));
      list.appendChild(li);
    });
    $("no-rejects").hidden = rejects.items.length > 0;
  }

  $("eta-date").addEventListener("change", function () { if (this.value) load().catch(XC.showError); });

  S.screen("reports", {
    show: function (params) {
      if (params.date) $("eta-date").value = params.date;
      if (!$("eta-date").value) $("eta-date").value = S.today();
      return load();
    },
  });
  XC.onLanguage(function () { if (dir) render(); });
})();
