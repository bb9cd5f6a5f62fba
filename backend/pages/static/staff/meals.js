/* The meal audit (营养餐审计): for a date, each school the caller may see
 * (GET /api/v1/audit/meals?date=) — boarders enrolled, present, meals served and received, the
 * five flags, the meal truck's arrival at the school as the proof of delivery, who reported and
 * when, and the reports that one replaced (the edit history); above them, the schools that have
 * not reported yet that day (the missing-report list). */
(function () {
  "use strict";

  const S = XC.staff;
  const t = XC.t;
  let rows = [];
  let dir = null;
  const $ = function (id) { return document.getElementById(id); };

  function count(v) { return v === null || v === undefined ? "—" : String(v); }

  async function load() {
    dir = await S.directory();
    rows = await XC.api("/api/v1/audit/meals?date=" + $("meals-date").value);
    render();
  }

  function name(id) {
    return S.schoolName(dir, id);
  }

  function render() {
    const missing = rows.filter(function (r) { return r.flags.indexOf("no_report") >= 0; });
    const list = $("meals-missing");
    list.textContent = "";
    missing.forEach(function (r) {
      const li = XC.el("li", "", name(r.school_id));
      li.dataset.schoolId = r.school_id;
      list.appendChild(li);
    });
    const day = rows.length ? rows[0].school_day : true;
    $("meals-missing-none").hidden = missing.length > 0;
    $("meals-missing-none").textContent = t(day ? "meals.allReported" : "meals.noSchoolDay");

    const body = document.querySelector("#meals tbody");
    body.textContent = "";
    if (!rows.length) {
      const row = XC.el("tr");
      const none = XC.el("td", "empty", t("meals.none"));
      none.colSpan = 7;
      row.appendChild(none);
      body.appendChild(row);
    }
    rows.forEach(function (r) {
      const row = XC.el("tr", r.flags.length ? "flagged" : "");
      row.dataset.schoolId = r.school_id;
      const school = S.cell(row, "meals.col.school", name(r.school_id), "", "th");
      school.scope = "row";
      S.cell(row, "meals.col.enrolled", count(r.boarders_enrolled), "num enrolled");
      S.cell(row, "meals.col.present", r.boarders_present === null && r.meals_served !== null
        ? t("meals.noAttendance") : count(r.boarders_present), "num present");
      S.cell(row, "meals.col.served", count(r.meals_served), "num served");
      S.cell(row, "meals.col.received", count(r.meals_received), "num received");
      S.cell(row, "meals.col.truck", r.delivery_arrived_at
        ? t("meals.truckAt", { time: XC.time(r.delivery_arrived_at) }) : t("meals.noTruck"),
             r.delivery_arrived_at ? "truck" : "truck none");
      const flags = S.cell(row, "meals.col.flags", "", "flags");
      r.flags.forEach(function (f) {
        const badge = XC.el("span", "badge warn", t("meals.flag." + f));
        badge.dataset.flag = f;
        flags.append(badge, " ");
      });
      if (!r.flags.length) flags.appendChild(XC.el("span", "badge ok", t("meals.ok")));
      if (r.reported_by) {
        flags.appendChild(XC.el("div", "hint reported", t("meals.reportedBy", {
          who: r.reported_by, when: S.dateTime(r.reported_at) })));
      }
      if (r.replaced.length) {
        const history = XC.el("details", "meal-history");
        history.appendChild(XC.el("summary", "", t("meals.edits", { n: r.replaced.length })));
        const ul = XC.el("ul", "ledger-history");
        r.replaced.forEach(function (v) {
          ul.appendChild(XC.el("li", "", t("meals.version", {
            n: v.version, who: v.reported_by, when: S.dateTime(v.reported_at),
            present: count(v.boarders_present), served: v.meals_served,
            received: v.meals_received })));
        });
        history.appendChild(ul);
        flags.appendChild(history);
      }
      body.appendChild(row);
    });
  }

  $("meals-date").addEventListener("change", function () { if (this.value) load().catch(XC.showError); });

  S.screen("meals", {
    show: function (params) {
      if (params.date) $("meals-date").value = params.date;
      if (!$("meals-date").value) $("meals-date").value = S.today();
      $("meals-date").max = S.today();
      return load();
    },
  });
  XC.onLanguage(function () { if (dir) render(); });
})();
