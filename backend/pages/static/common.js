/* xiaoche pages: what every page shares — the dictionaries and the language toggle, the login
 * token (sessionStorage), calls to the API with errors in words, the live stream, times.
 * Plain ES2019, no build step, no third-party code: it runs from a village school's intranet. */
(function () {
  "use strict";

  const XC = (window.XC = {});
  const DICTS = JSON.parse(document.getElementById("xc-i18n").textContent);
  const DEFAULT_LANG = "zh-CN";
  const KEYS = { lang: "xiaoche.lang", token: "xiaoche.token", role: "xiaoche.role",
                 notice: "xiaoche.notice", langChosen: "xiaoche.langChosen" };
  const STAFF = ["logistics", "admin", "finance"];
  const languageListeners = [];

  /* ``storage``: "localStorage" or "sessionStorage", looked up inside the try: where storage is
   * disabled even reading window.localStorage throws */
  function stored(storage, key) {
    try { return window[storage].getItem(key); } catch (e) { return null; }
  }
  function store(storage, key, value) {
    try {
      if (value === null) window[storage].removeItem(key); else window[storage].setItem(key, value);
    } catch (e) { /* private mode: the page still works for this visit */ }
  }

  let lang = DICTS[stored("localStorage", KEYS.lang)] ? stored("localStorage", KEYS.lang) : DEFAULT_LANG;

  /* ---- words ------------------------------------------------------------------------- */
  XC.t = function (key, params) {
    let text = (DICTS[lang] && DICTS[lang][key]) || DICTS[DEFAULT_LANG][key] || key;
    Object.keys(params || {}).forEach(function (name) {
      text = text.split("{" + name + "}").join(String(params[name]));
    });
    return text;
  };
  XC.lang = function () { return lang; };
  /** Whether the reader picked the language with the toggle in this browser since it was last
   * saved to their account (the parents' page then saves it to /me/preferences). */
  XC.chosenLanguage = function () { return stored("localStorage", KEYS.langChosen) === "1"; };
  XC.languageSaved = function () { store("localStorage", KEYS.langChosen, null); };
  XC.onLanguage = function (fn) { languageListeners.push(fn); };

  XC.translate = function (root) {
    (root || document).querySelectorAll("[data-i18n]").forEach(function (el) {
      el.textContent = XC.t(el.dataset.i18n);
    });
    (root || document).querySelectorAll("[data-i18n-attr]").forEach(function (el) {
      el.dataset.i18nAttr.split(";").forEach(function (pair) {
        const parts = pair.split(":");
        el.setAttribute(parts[0], XC.t(parts[1]));
      });
    });
  };

  XC.setLanguage = function (next) {
    lang = DICTS[next] ? next : DEFAULT_LANG;
    store("localStorage", KEYS.lang, lang);
    document.documentElement.lang = lang;
    const button = document.getElementById("lang");
    if (button) button.lang = lang === "en" ? "zh-CN" : "en";  // the button names the other one
    XC.translate(document);
    languageListeners.forEach(function (fn) { fn(lang); });
  };

  /* ---- login ------------------------------------------------------------------------- */
  XC.token = function () { return stored("sessionStorage", KEYS.token); };
  XC.role = function () { return stored("sessionStorage", KEYS.role); };
  XC.saveLogin = function (token, role) {
    store("sessionStorage", KEYS.token, token);
    store("sessionStorage", KEYS.role, role);
  };
  XC.pageFor = function (role) {
    if (role === "parent") return "/parent";
    if (STAFF.indexOf(role) >= 0) return "/staff";
    return null;
  };
  XC.isStaff = function (role) { return STAFF.indexOf(role) >= 0; };
  /** Forget the token and go to the login page, which then shows the notice (a dictionary key). */
  XC.toLogin = function (noticeKey) {
    store("sessionStorage", KEYS.token, null);
    store("sessionStorage", KEYS.role, null);
    if (noticeKey) store("sessionStorage", KEYS.notice, noticeKey);
    window.location.replace("/");
  };
  XC.takeNotice = function () {
    const key = stored("sessionStorage", KEYS.notice);
    store("sessionStorage", KEYS.notice, null);
    return key;
  };
  /** On a page that needs a login: true when there is a token, else off to the login page. */
  XC.requireLogin = function () {
    if (XC.token()) return true;
    XC.toLogin(null);
    return false;
  };

  /* ---- the API ------------------------------------------------------------------------- */
  function ApiError(status, key, params) {
    this.name = "ApiError";
    this.status = status;
    this.key = key;
    this.params = params || {};
    this.message = XC.t(key, params);
  }
  ApiError.prototype = Object.create(Error.prototype);
  XC.ApiError = ApiError;

  function errorFor(response) {
    const status = response.status;
    if (status === 401) return new ApiError(401, "err.expired");
    if (status === 403) return new ApiError(403, "err.forbidden");
    if (status === 404) return new ApiError(404, "err.notFound");
    if (status === 429) {
      const wait = parseInt(response.headers.get("Retry-After") || "60", 10);
      return new ApiError(429, "err.tooMany", { s: isNaN(wait) ? 60 : wait });
    }
    return new ApiError(status, "err.server");
  }

  /** fetch + JSON with the token; a 401 (token expired or revoked) goes back to the login page. */
  XC.api = async function (path, options) {
    const opts = options || {};
    const headers = { Accept: "application/json" };
    if (opts.auth !== false) {
      const token = XC.token();
      if (!token) { XC.toLogin("err.expired"); throw new ApiError(401, "err.expired"); }
      headers.Authorization = "Bearer " + token;
    }
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, { method: opts.method || "GET", headers: headers,
                                     body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
                                     credentials: "omit", cache: "no-store" });
    } catch (e) {
      throw new ApiError(0, "err.network");
    }
    if (!response.ok) {
      const error = errorFor(response);
      if (response.status === 409 || response.status === 422) {  // the API's reason, in its words
        try { error.detail = (await response.json()).detail || ""; } catch (e) { error.detail = ""; }
      }
      if (response.status === 401 && opts.auth !== false) XC.toLogin("err.expired");
      throw error;
    }
    return response.status === 204 ? null : response.json();
  };

  /* ---- telling the user -------------------------------------------------------------- */
  let bannerKey = null;
  let bannerParams = null;
  XC.showError = function (error) {
    bannerKey = error && error.key ? error.key : "err.page";
    bannerParams = error && error.params ? error.params : null;
    const banner = document.getElementById("banner");
    if (!banner) return;
    banner.textContent = XC.t(bannerKey, bannerParams);
    banner.hidden = false;
  };
  XC.clearError = function () {
    bannerKey = null;
    const banner = document.getElementById("banner");
    if (banner) banner.hidden = true;
  };
  XC.onLanguage(function () { if (bannerKey) XC.showError({ key: bannerKey, params: bannerParams }); });

  window.addEventListener("error", function () { XC.showError({ key: "err.page" }); });
  window.addEventListener("unhandledrejection", function (event) {
    XC.showError(event.reason instanceof ApiError ? event.reason : { key: "err.page" });
  });

  /* ---- time -------------------------------------------------------------------------- */
  /* Times are shown in the district's timezone (the page's data-timezone), whatever the
   * browser's: a parent in 渌口 and the notifications' texts agree on "07:05". */
  const timezone = document.body.dataset.timezone || "Asia/Shanghai";
  let hhmm = null;
  try {
    hhmm = new Intl.DateTimeFormat("en-GB", { timeZone: timezone, hour: "2-digit",
                                               minute: "2-digit", hourCycle: "h23" });
  } catch (e) { hhmm = null; }  // an unknown zone: the browser's own
  XC.time = function (iso) {
    if (!iso) return "";
    const date = new Date(iso);
    if (hhmm) return hhmm.format(date);
    const pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return pad(date.getHours()) + ":" + pad(date.getMinutes());
  };
  let ymd = null;
  try {
    ymd = new Intl.DateTimeFormat("en-CA", { timeZone: timezone, year: "numeric", month: "2-digit",
                                             day: "2-digit" });
  } catch (e) { ymd = null; }
  /** The district's local date of a moment, "YYYY-MM-DD". */
  XC.localDate = function (iso) {
    const date = new Date(iso);
    if (ymd) return ymd.format(date);
    const pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
  };
  /** A local date "YYYY-MM-DD" in words: "11月16日" / "16 Nov". */
  XC.dateLabel = function (isoDate) {
    const parts = String(isoDate).split("-").map(Number);
    if (lang === "en") {
      const months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
      return parts[2] + " " + months[parts[1] - 1];
    }
    return parts[1] + "月" + parts[2] + "日";
  };
  XC.ago = function (iso) {
    if (!iso) return "";
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return XC.t("ago.now");
    if (s < 3600) return XC.t("ago.min", { n: Math.floor(s / 60) });
    if (s < 86400) return XC.t("ago.hour", { n: Math.floor(s / 3600) });
    return XC.t("ago.day", { n: Math.floor(s / 86400) });
  };

  /* ---- the live stream --------------------------------------------------------------- */
  /** EventSource on /api/v1/stream (the token in the query: EventSource sends no headers).
   * ``handlers`` maps event names to functions of the parsed data; ``onStatus(live)`` tells
   * whether the stream is connected. EventSource reconnects by itself (Last-Event-ID); when it
   * gives up (an answer that is not a stream, e.g. 401) the token is checked and, if still
   * good, a new stream is opened a few seconds later. */
  XC.openStream = function (handlers, onStatus) {
    let source = null;
    let retry = null;
    function reopen() {  // until the server answers again (no network: try again)
      retry = window.setTimeout(function () {
        retry = null;
        XC.api("/api/v1/me").then(open, function (e) {  // else the banner or the login page
          if (e && e.status === 0 && retry === null) reopen();
        });
      }, 3000);
    }
    function open() {
      const token = XC.token();
      if (!token) { XC.toLogin("err.expired"); return; }
      source = new EventSource("/api/v1/stream?access_token=" + encodeURIComponent(token));
      Object.keys(handlers).forEach(function (name) {
        source.addEventListener(name, function (event) {
          let data;
          try { data = JSON.parse(event.data); } catch (e) { return; }
          handlers[name](data);
        });
      });
      source.addEventListener("open", function () { onStatus(true); });
      source.addEventListener("error", function () {
        onStatus(false);
        if (source.readyState === EventSource.CLOSED && retry === null) {
          reopen();
        }
      });
    }
    open();
    window.addEventListener("pagehide", function () { if (source) source.close(); });
  };
  XC.streamStatus = function (live) {
    const el = document.getElementById("stream-status");
    if (!el) return;
    el.dataset.i18n = live ? "stream.live" : "stream.reconnecting";
    el.className = "stream-status " + (live ? "live" : "down");
    el.textContent = XC.t(el.dataset.i18n);
  };

  /* ---- map labels -------------------------------------------------------------------- */
  /** Place labels so that none overlaps another, a stop's dot or leaves ``frame`` (an element).
   * ``items``, most important first: {el, tries: [fn…]} — each fn puts the label one way (a
   * side, the full name, a short label); the first way that fits is kept, else the last way
   * (the shortest) stays. ``obstacles``: elements nothing may cover (the stops' dots). Returns
   * the number of labels that fitted. Measured on screen, so it works for SVG text and for
   * Leaflet's tooltips alike; call it again after a zoom or a resize. */
  XC.placeLabels = function (items, obstacles, frame) {
    const box = function (el) {
      const r = el.getBoundingClientRect();
      return { l: r.left, t: r.top, r: r.right, b: r.bottom };
    };
    const overlaps = function (a, b) {
      return a.l < b.r - 0.5 && b.l < a.r - 0.5 && a.t < b.b - 0.5 && b.t < a.b - 0.5;
    };
    const limit = frame ? box(frame) : null;
    const taken = (obstacles || []).map(box);
    let fitted = 0;
    items.forEach(function (item) {
      let fits = false;
      for (let i = 0; i < item.tries.length && !fits; i++) {
        item.tries[i]();
        const b = box(item.el);
        fits = (!limit || (b.l >= limit.l - 0.5 && b.r <= limit.r + 0.5 && b.t >= limit.t - 0.5 &&
                           b.b <= limit.b + 0.5)) &&
               !taken.some(function (other) { return overlaps(b, other); });
        if (fits || i === item.tries.length - 1) taken.push(b);
      }
      item.el.classList.toggle("label-crowded", !fits);
      if (fits) fitted += 1;
    });
    return fitted;
  };

  /* ---- every page -------------------------------------------------------------------- */
  /** The schematic maps' projection: ``points`` ([lat, lon]…) fitted into ``width`` px with
   * ``pad`` px round them, east-west shrunk by the cosine of their mean latitude; the height
   * follows the points' shape within [minHeight, maxHeight]. Returns {height, project(lat, lon)}. */
  XC.fitPoints = function (points, width, pad, minHeight, maxHeight) {
    const meanLat = points.reduce(function (sum, p) { return sum + p[0]; }, 0) / points.length;
    const k = Math.cos(meanLat * Math.PI / 180);
    const xs = points.map(function (p) { return p[1] * k; });
    const ys = points.map(function (p) { return -p[0]; });
    const minX = Math.min.apply(null, xs), maxX = Math.max.apply(null, xs);
    const minY = Math.min.apply(null, ys), maxY = Math.max.apply(null, ys);
    const spanX = Math.max(maxX - minX, 1e-6), spanY = Math.max(maxY - minY, 1e-6);
    const height = Math.round(Math.min(Math.max(width * spanY / spanX, minHeight), maxHeight));
    const scale = Math.min((width - 2 * pad) / spanX, (height - 2 * pad) / spanY);
    const offX = (width - scale * spanX) / 2, offY = (height - scale * spanY) / 2;
    return { height: height, project: function (lat, lon) {
      return [offX + (lon * k - minX) * scale, offY + (-lat - minY) * scale];
    } };
  };

  XC.el = function (tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  };

  if (lang !== DEFAULT_LANG) XC.setLanguage(lang);
  const langButton = document.getElementById("lang");
  if (langButton) {
    langButton.addEventListener("click", function () {
      XC.setLanguage(lang === "en" ? "zh-CN" : "en");
      store("localStorage", KEYS.langChosen, "1");
    });
  }
  const logout = document.getElementById("logout");
  if (logout) logout.addEventListener("click", function () { XC.toLogin(null); });
})();
