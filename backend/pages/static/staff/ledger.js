/* The subsidy ledger (走教补贴台账): for a month, every teacher the caller may see
 * (/pages/staff/directory) with their trips, pending trips and total from
 * GET /api/v1/subsidies?teacher_id=&month=; a teacher's trips with distance and tier, each
 * decision under its trip, and the pending ones to approve or reject with a reason
 * (POST /api/v1/subsidies/{entry_id}/approve | reject — each decision is a new ledger row, written
 * with the caller's name). CSV from the API (Accept: text/csv). */
(function () {
  "use strict";

  const S = XC.staff;
  const t = XC.t;
  let dir = null;
  let statements = [];  // the month's, one per teacher
  let chosen = null;    // teacher_id shown in detail

  function monthInput() { return document.getElementById("ledger-month"); }

  async function load() {
    dir = await S.directory();
    const month = monthInput().value;
    statements = await Promise.all(dir.teachers.map(function (teacher) {
      return XC.api("/api/v1/subsidies?teacher_id=" + encodeURIComponent(teacher.teacher_id) +
                    "&month=" + encodeURIComponent(month));
    }));
    render();
  }

  function trips(statement) {  // the month's trips: the booking row, then its decisions
    const byTrip = {};
    const order = [];
    statement.entries.forEach(function (e) {
      if (!byTrip[e.trip_id]) { byTrip[e.trip_id] = []; order.push(e.trip_id); }
      byTrip[e.trip_id].push(e);
    });
    return order.map(function (id) {
      const rows = byTrip[id];
      return { trip: rows[0], decisions: rows.slice(1), status: rows[rows.length - 1].status,
               amount: rows.reduce(function (s, r) { return s + r.amount; }, 0) };
    });
  }

  function render() {
    const body = document.querySelector("#ledger-teachers tbody");
    body.textContent = "";
    let all = 0, pending = 0, count = 0;
    statements.forEach(function (st) {
      const row = XC.el("tr", st.teacher_id === chosen ? "selected" : "");
      row.dataset.teacherId = st.teacher_id;
      const name = S.cell(row, "ledger.col.teacher", "", "teacher", "th");
      name.scope = "row";
      const open = XC.el("button", "link", st.teacher_name);
      open.type = "button";
      open.addEventListener("click", function () { chosen = st.teacher_id; render(); });
      name.appendChild(open);
      const n = trips(st).length;
      S.cell(row, "ledger.col.trips", String(n), "num");
      const p = S.cell(row, "ledger.col.pending", "", "num pending");
      p.appendChild(XC.el("span", st.pending ? "badge pending" : "", String(st.pending)));
      S.cell(row, "ledger.col.total", S.money(st.total, st.currency), "num total");
      body.appendChild(row);
      all += st.total; pending += st.pending; count += n;
    });
    if (!statements.length) {
      const row = XC.el("tr");
      const none = XC.el("td", "empty", t("ledger.noTeachers"));
      none.colSpan = 4;
      row.appendChild(none);
      body.appendChild(row);
    }
    document.getElementById("ledger-all-trips").textContent = String(count);
    document.getElementById("ledger-all-pending").textContent = String(pending);
    document.getElementById("ledger-all-total").textContent = S.money(all, statements.length ? statements[0].currency : "CNY");
    [["ledger-all-trips", "ledger.col.trips"], ["ledger-all-pending", "ledger.col.pending"],
     ["ledger-all-total", "ledger.col.total"]].forEach(function (x) {
      const el = document.getElementById(x[0]);
      el.dataset.labelKey = x[1];
      el.dataset.label = t(x[1]);
      el.className = "num";
    });
    renderDetail();
  }

  function statusBadge(status) {
    const cls = status === "approved" ? "ok" : status === "pending" ? "pending" : "warn";
    return XC.el("span", "badge " + cls, t("ledger.status." + status));
  }

  function renderDetail() {
    const card = document.getElementById("ledger-detail");
    const st = statements.find(function (s) { return s.teacher_id === chosen; });
    card.hidden = !st;
    if (!st) return;
    document.getElementById("ledger-teacher-title").textContent =
      t("ledger.teacherMonth", { name: st.teacher_name, month: st.month });
    document.getElementById("ledger-total").textContent = S.money(st.total, st.currency);
    document.getElementById("ledger-cap").hidden = !st.cap_applied;
    const list = document.getElementById("ledger-trips");
    list.textContent = "";
    const all = trips(st);
    document.getElementById("ledger-empty").hidden = all.length > 0;
    all.forEach(function (x) {
      const e = x.trip;
      const li = XC.el("li", "ledger-trip " + x.status);
      li.dataset.tripId = e.trip_id;
      li.dataset.status = x.status;
      const head = XC.el("div", "ledger-trip-head");
      head.appendChild(XC.el("strong", "", e.date + " " + XC.time(e.departed_at) + "–" + XC.time(e.arrived_at)));
      head.appendChild(XC.el("span", "", S.schoolName(dir, e.from_school_id) + " → " + S.schoolName(dir, e.to_school_id)));
      head.appendChild(XC.el("span", "distance", t("ledger.distanceTier", {
        km: Number(e.distance_km).toFixed(1), tier: e.tier === null ? "—" : e.tier })));
      head.appendChild(statusBadge(x.status));
      head.appendChild(XC.el("span", "ledger-trip-amount", S.money(x.amount, st.currency)));
      li.appendChild(head);
      if (e.review_reasons) {
        li.appendChild(XC.el("p", "hint", t("ledger.why", { reasons: e.review_reasons.split(/[,;\s]+/)
          .filter(Boolean).map(function (r) { return t("ledger.reason." + r); }).join("、") })));
      }
      if (x.decisions.length) {
        const history = XC.el("ul", "ledger-history");
        x.decisions.forEach(function (d) {
          history.appendChild(XC.el("li", "decision-" + d.kind, t("ledger.decided", {
            kind: t("ledger.kind." + d.kind), who: d.recorded_by, when: S.dateTime(d.recorded_at),
            amount: S.money(d.amount, st.currency), reason: d.reason || "—" })));
        });
        li.appendChild(history);
      }
      // the finance office reads the ledger; 后勤 and admins decide (POST …/approve|reject)
      if (x.status === "pending" && S.role() !== "finance") li.appendChild(decisionForm(e));
      list.appendChild(li);
    });
  }

  function decisionForm(entry) {
    const form = XC.el("form", "decision");
    const reason = XC.el("input");
    reason.name = "reason";
    reason.maxLength = 1000;
    reason.placeholder = t("ledger.reasonPlaceholder");
    reason.setAttribute("aria-label", t("ledger.reason"));
    const approve = XC.el("button", "approve", t("ledger.approve"));
    approve.type = "button";
    const reject = XC.el("button", "reject", t("ledger.reject"));
    reject.type = "button";
    const note = XC.el("span", "error");
    note.hidden = true;
    form.append(reason, approve, reject, note);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); });
    async function decide(verb) {
      if (verb === "reject" && !reason.value.trim()) {
        note.textContent = t("ledger.reasonRequired");
        note.hidden = false;
        reason.focus();
        return;
      }
      approve.disabled = reject.disabled = true;
      try {
        await XC.api("/api/v1/subsidies/" + entry.entry_id + "/" + verb,
                     { method: "POST", body: { reason: reason.value.trim() } });
        await load();
      } catch (e) {
        note.textContent = e.status === 409 ? t("ledger.alreadyDecided") : e.message;
        note.hidden = false;
        approve.disabled = reject.disabled = false;
      }
    }
    approve.addEventListener("click", function () { decide("approve"); });
    reject.addEventListener("click", function () { decide("reject"); });
    return form;
  }

  document.getElementById("ledger-month").addEventListener("change", function () {
    if (monthInput().value) load().catch(XC.showError);
  });
  /* The finance office's export of the chosen teacher's month, in the page's language. */
  function exportAs(accept, suffix) {
    const st = statements.find(function (s) { return s.teacher_id === chosen; });
    if (!st) return;
    S.download("/api/v1/subsidies?teacher_id=" + encodeURIComponent(st.teacher_id) + "&month=" + st.month +
               "&lang=" + (XC.lang() === "en" ? "en" : "zh"),
               accept, "subsidies-" + st.teacher_id + "-" + st.month + suffix).catch(XC.showError);
  }
  document.getElementById("ledger-csv").addEventListener("click", function () {
    exportAs("text/csv", ".csv");
  });
  document.getElementById("ledger-xlsx").addEventListener("click", function () {
    exportAs("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx");
  });

  S.screen("ledger", {
    show: function (params) {
      if (params.month) monthInput().value = params.month;
      if (!monthInput().value) monthInput().value = S.thisMonth();
      if (params.teacher) chosen = params.teacher;
      return load();
    },
  });
  XC.onLanguage(function () { if (dir) render(); });
})();
