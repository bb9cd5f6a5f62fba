/* The finance office's screen (财务; roles finance and admin): the clusters' distance grid on a
 * date (GET /api/v1/subsidies/grid?date=) — each member school's distance from its core school,
 * where the distance comes from (finance's override, the median of verified driven trips, or the
 * straight line × road factor), its 三级九等 band and amounts, and the override in force; the
 * override form (PUT /subsidies/grid/{school_id}: distance, reason, effective date); a month's
 * books, open or closed, with the close button (GET/POST /subsidies/months/{YYYY-MM}[/close],
 * after a confirm dialog); and what changed in that month since its last export
 * (GET /subsidies/changes?month=). A 409 or 422 is shown next to the form it answers. */
(function () {
  "use strict";

  const S = XC.staff;
  const t = XC.t;
  const $ = function (id) { return document.getElementById(id); };
  const NUMERALS = ["一", "二", "三", "四", "五", "六", "七", "八", "九"];
  let dir = null;
  let rows = [];
  let status = null;
  let changes = null;

  function km(v) { return t("finance.km", { km: Number(v).toFixed(1) }); }
  function band(level, grade) {
    if (level === null || level === undefined) return t("finance.noBand");
    return t("finance.band", { level: XC.lang() === "en" ? level : NUMERALS[level - 1],
                               grade: XC.lang() === "en" ? grade : NUMERALS[grade - 1] });
  }
  function school(id) { return S.schoolName(dir, id); }
  function teacher(id) {
    const x = dir.teachers.find(function (y) { return y.teacher_id === id; });
    return x ? x.name : id;
  }
  function when(epochS) { return S.dateTime(new Date(epochS * 1000).toISOString()); }

  /* ---- the grid ------------------------------------------------------------------------ */
  async function loadGrid() {
    dir = await S.directory();
    rows = await XC.api("/api/v1/subsidies/grid?date=" + $("grid-date").value);
    renderGrid();
  }

  function renderGrid() {
    const body = document.querySelector("#grid tbody");
    body.textContent = "";
    if (!rows.length) {
      const row = XC.el("tr");
      const none = XC.el("td", "empty", t("finance.noGrid"));
      none.colSpan = 7;
      row.appendChild(none);
      body.appendChild(row);
    }
    rows.forEach(function (r) {
      const row = XC.el("tr", r.source);
      row.dataset.schoolId = r.school_id;
      const name = S.cell(row, "finance.col.school", school(r.school_id), "", "th");
      name.scope = "row";
      name.appendChild(XC.el("div", "hint", t("finance.cluster", {
        cluster: r.cluster_name, core: school(r.core_school_id) })));
      S.cell(row, "finance.col.distance", km(r.distance_km), "num distance");
      S.cell(row, "finance.col.source", t("finance.source." + r.source, { n: r.samples }), "source");
      S.cell(row, "finance.col.band", band(r.level, r.grade), "band");
      S.cell(row, "finance.col.perMonth", S.money(r.per_month), "num per-month");
      S.cell(row, "finance.col.perTrip", S.money(r.per_trip), "num per-trip");
      const o = r.override;
      const cell = S.cell(row, "finance.col.override", o ? t("finance.overrideText", {
        km: Number(o.distance_km).toFixed(1), from: o.effective_from, reason: o.reason,
        who: o.set_by, when: when(o.set_at) }) : "—", "override");
      const edit = XC.el("button", "link", t("finance.edit"));
      edit.type = "button";
      edit.addEventListener("click", function () {
        $("override-school").value = r.school_id;
        $("override-km").value = Number(r.distance_km).toFixed(1);
        $("override-km").focus();
      });
      cell.append(" ", edit);
      body.appendChild(row);
    });
    const select = $("override-school");
    const chosen = select.value;
    select.textContent = "";
    rows.forEach(function (r) {
      const option = XC.el("option", "", school(r.school_id) + " · " + r.cluster_name);
      option.value = r.school_id;
      select.appendChild(option);
    });
    if (chosen) select.value = chosen;
  }

  $("override-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const note = $("override-status");
    note.className = "";
    const id = $("override-school").value;
    try {
      const row = await XC.api("/api/v1/subsidies/grid/" + encodeURIComponent(id), {
        method: "PUT", body: { distance_km: Number($("override-km").value),
                               reason: $("override-reason").value.trim(),
                               effective_from: $("override-from").value } });
      note.textContent = t("finance.saved", { school: school(id), km: km(row.distance_km),
                                              band: band(row.level, row.grade) });
      $("override-reason").value = "";
      await loadGrid();
      await loadChanges();
    } catch (e) {
      note.className = "error";
      note.textContent = S.problem(e);
    }
  });

  /* ---- the month's books ---------------------------------------------------------------- */
  function month() { return $("finance-month").value; }

  async function loadMonth() {
    dir = await S.directory();
    status = await XC.api("/api/v1/subsidies/months/" + month());
    renderMonth();
    await loadChanges();
  }

  function renderMonth() {
    if (!status) return;
    const line = $("month-status");
    line.dataset.closed = status.closed ? "1" : "0";
    line.textContent = status.closed
      ? t("finance.closed", { month: status.month, who: status.closed_by, when: when(status.closed_at) })
      : t("finance.open", { month: status.month });
    $("month-close").hidden = status.closed;
  }

  $("month-close").addEventListener("click", async function () {
    const m = month();
    const error = $("month-error");
    error.hidden = true;
    if (!window.confirm(t("finance.confirmClose", { month: m }))) return;
    try {
      status = await XC.api("/api/v1/subsidies/months/" + m + "/close", { method: "POST", body: {} });
      renderMonth();
      await loadChanges();
    } catch (e) {
      error.textContent = S.problem(e);
      error.hidden = false;
    }
  });

  /* ---- changes since the last export ------------------------------------------------------ */
  async function loadChanges() {
    changes = await XC.api("/api/v1/subsidies/changes?month=" + month());
    renderChanges();
  }

  function describe(line) {
    const who = teacher(line.teacher_id);
    if (line.kind === "allowance") {
      return t("finance.line.allowance", { teacher: who, school: school(line.school_id),
                                          band: band(line.level, line.grade), days: line.days_present });
    }
    return t("finance.line.transport", { teacher: who, trip: line.trip_id,
                                        status: t("ledger.status." + line.status) });
  }

  function renderChanges() {
    if (!changes) return;
    const last = changes.last_export;
    $("changes-export").textContent = last
      ? t("finance.lastExport", { when: S.dateTime(last.exported_at), who: last.exported_by })
      : t("finance.neverExported");
    const sign = changes.total_change > 0 ? "+" : changes.total_change < 0 ? "−" : "±";
    $("changes-total").textContent = t("finance.totalChange", {
      month: changes.month, amount: sign + S.money(Math.abs(changes.total_change)) });
    const list = $("changes");
    list.textContent = "";
    [["added", changes.added], ["changed", changes.changed], ["removed", changes.removed]]
      .forEach(function (group) {
        group[1].forEach(function (line) {
          const li = XC.el("li", "change " + group[0]);
          li.dataset.change = group[0];
          li.dataset.key = line.key;
          li.appendChild(XC.el("strong", "", t("finance.change." + group[0])));
          li.appendChild(XC.el("span", "", describe(line)));
          li.appendChild(XC.el("span", "amount", group[0] === "changed"
            ? S.money(line.amount_before) + " → " + S.money(line.amount) : S.money(line.amount)));
          list.appendChild(li);
        });
      });
    $("no-changes").hidden = list.children.length > 0;
  }

  $("grid-date").addEventListener("change", function () { if (this.value) loadGrid().catch(XC.showError); });
  $("finance-month").addEventListener("change", function () {
    $("month-error").hidden = true;
    if (this.value) loadMonth().catch(XC.showError);
  });

  S.screen("finance", {
    show: function (params) {
      if (params.month) $("finance-month").value = params.month;
      if (!$("finance-month").value) $("finance-month").value = S.previousMonth(S.thisMonth());
      if (!$("grid-date").value) $("grid-date").value = S.today();
      if (!$("override-from").value) $("override-from").value = S.today();
      return Promise.all([loadGrid(), loadMonth()]);
    },
  });
  XC.onLanguage(function () { if (dir) { renderGrid(); renderMonth(); renderChanges(); } });
})();
