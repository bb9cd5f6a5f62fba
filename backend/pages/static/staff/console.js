/* The staff console's frame: the screens behind the navigation bar (#vehicles, #ledger, #audit,
 * #day — the address says which, so a screen can be bookmarked and the back button works), and
 * what the screens share: the caller's directory (/pages/staff/directory), local dates in the
 * district's timezone, downloads and table cells labelled for the phone's card layout. */
(function () {
  "use strict";

  const S = (XC.staff = {});
  const screens = {};  // name -> {show(params), shown}
  const tz = document.body.dataset.timezone || "Asia/Shanghai";
  let directory = null;
  let role = null;
  const HOME = { finance: "finance" };  // the screen a role opens on (else the vehicles)

  /** A screen registers itself; ``show(params)`` runs each time it is opened. */
  S.screen = function (name, handlers) { screens[name] = handlers; };

  /** Whether the signed-in role may open a screen: its tab's ``data-roles`` (default: logistics
   * and admin) names the roles whose API calls it makes. */
  function allowed(name) {
    const tab = document.querySelector('.console-nav a[data-screen="' + name + '"]');
    const roles = (tab && tab.dataset.roles) || "logistics admin";
    return role !== null && roles.split(" ").indexOf(role) >= 0;
  }
  S.role = function () { return role; };

  function parseHash() {
    const hash = window.location.hash.replace(/^#/, "");
    const parts = hash.split("?");
    const params = {};
    new URLSearchParams(parts[1] || "").forEach(function (v, k) { params[k] = v; });
    const home = HOME[role] || "vehicles";
    const name = screens[parts[0]] && allowed(parts[0]) ? parts[0] : home;
    return { name: name, params: params };
  }

  /** Open a screen: ``S.go("day", {vehicle: "bus-07", date: "2026-11-23"})``. */
  S.go = function (name, params) {
    const query = new URLSearchParams(params || {}).toString();
    const hash = "#" + name + (query ? "?" + query : "");
    if (window.location.hash === hash) route(); else window.location.hash = hash;
  };

  function route() {
    const at = parseHash();
    document.querySelectorAll(".screen").forEach(function (el) {
      el.hidden = el.dataset.screen !== at.name;
    });
    document.querySelectorAll(".console-nav a").forEach(function (a) {
      if (a.dataset.screen === at.name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
    const screen = screens[at.name];
    if (screen && screen.show) {
      Promise.resolve(screen.show(at.params)).catch(function (e) { XC.showError(e); });
    }
    if (screen && screen.resize) screen.resize();
  }

  /** ``me`` from /api/v1/me: the tabs of other roles' screens are taken away. */
  S.start = function (me) {
    role = me.role;
    document.querySelectorAll(".console-nav a").forEach(function (a) {
      a.hidden = !allowed(a.dataset.screen);
    });
    window.addEventListener("hashchange", route);
    route();
  };

  /** The caller's teachers, routes and schools (fetched once). */
  S.directory = async function () {
    if (!directory) directory = XC.api("/pages/staff/directory");
    return directory;
  };
  S.schoolName = function (dir, id) {
    const s = dir.schools.find(function (x) { return x.school_id === id; });
    return s ? s.name : id;
  };
  S.routeName = function (dir, id) {
    const r = dir.routes.find(function (x) { return x.route_id === id; });
    return r ? r.name : id;
  };

  /* ---- dates in the district's timezone --------------------------------------------- */
  const ymd = new Intl.DateTimeFormat("en-CA", { timeZone: tz, year: "numeric", month: "2-digit",
                                                 day: "2-digit" });
  const parts = new Intl.DateTimeFormat("en-GB", { timeZone: tz, year: "numeric", month: "2-digit",
                                                   day: "2-digit", hour: "2-digit", minute: "2-digit",
                                                   second: "2-digit", hourCycle: "h23" });
  /** YYYY-MM-DD of an instant (default: now) in the district. */
  S.today = function (when) { return ymd.format(when || new Date()); };
  S.thisMonth = function () { return S.today().slice(0, 7); };
  /** The month before ``month`` ("2026-01" -> "2025-12"). */
  S.previousMonth = function (month) {
    const p = month.split("-").map(Number);
    return p[1] === 1 ? (p[0] - 1) + "-12" : p[0] + "-" + String(p[1] - 1).padStart(2, "0");
  };
  function offsetMs(epochMs) {  // the district's UTC offset at that instant
    const p = {};
    parts.formatToParts(new Date(epochMs)).forEach(function (x) { p[x.type] = x.value; });
    return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) -
      Math.floor(epochMs / 1000) * 1000;
  }
  /** [since, until] epoch seconds of a local date's day in the district. */
  S.dayWindow = function (date) {
    const d = date.split("-").map(Number);
    const guess = Date.UTC(d[0], d[1] - 1, d[2]);
    const start = guess - offsetMs(guess - offsetMs(guess));
    const next = Date.UTC(d[0], d[1] - 1, d[2] + 1);
    const end = next - offsetMs(next - offsetMs(next));
    return [start / 1000, end / 1000 - 0.001];
  };
  S.dateTime = function (iso) { return iso ? S.today(new Date(iso)) + " " + XC.time(iso) : ""; };

  /* ---- bits every screen uses -------------------------------------------------------- */
  /** A table cell with its column's label (shown before the value on a phone). */
  S.cell = function (row, labelKey, text, className, tag) {
    const td = XC.el(tag || "td", className || "", text);
    td.dataset.label = XC.t(labelKey);
    td.dataset.labelKey = labelKey;
    row.appendChild(td);
    return td;
  };
  XC.onLanguage(function () {
    document.querySelectorAll("[data-label-key]").forEach(function (el) {
      el.dataset.label = XC.t(el.dataset.labelKey);
    });
  });

  /** Fetch ``path`` with the token and save the answer as ``filename`` (a CSV link cannot carry
   * the Authorization header, so the page fetches and hands the browser a blob). */
  S.download = async function (path, accept, filename) {
    const response = await fetch(path, { headers: { Authorization: "Bearer " + XC.token(),
                                                    Accept: accept },
                                         credentials: "omit", cache: "no-store" });
    if (!response.ok) throw new XC.ApiError(response.status, response.status === 404 ? "err.notFound" : "err.server");
    S.save(await response.blob(), filename);
  };
  S.save = function (blob, filename) {
    const a = XC.el("a");
    a.href = URL.createObjectURL(blob);
    a.download = filename;
    a.hidden = true;
    document.body.appendChild(a);
    a.click();
    window.setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  };
  /** Rows (arrays) as CSV with a UTF-8 BOM (Excel reads 朱亭 as 朱亭). */
  S.csv = function (rows) {
    const text = rows.map(function (row) {
      return row.map(function (v) {
        const s = v === null || v === undefined ? "" : String(v);
        return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
      }).join(",");
    }).join("\r\n") + "\r\n";
    return new Blob(["\ufeff" + text], { type: "text/csv;charset=utf-8" });
  };
  /** An error of the API in words for the form it answers: a 409 or 422 with the API's reason
   * (``detail``, kept in its words), anything else as the banner would say it. */
  S.problem = function (error) {
    if (error && (error.status === 409 || error.status === 422)) {
      return XC.t(error.status === 409 ? "err.conflict" : "err.invalid", { detail: error.detail || "" });
    }
    return error && error.message ? error.message : XC.t("err.page");
  };
  S.money = function (amount, currency) {
    const n = Number(amount || 0).toFixed(2);
    return currency === "CNY" || !currency ? "¥" + n : n + " " + currency;
  };
})();
