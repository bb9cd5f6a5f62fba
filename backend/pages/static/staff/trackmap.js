/* The console's map of a trip or a vehicle's day: lines (the planned route, the driven track,
 * its deviations), marks (stops with their status, arrivals, overspeed) and a cursor that a
 * replay moves. On the Leaflet base map when one is configured (XIAOCHE_MAP_TILES, basemap.js),
 * else as an inline SVG schematic fitted to what it shows — the same calls either way.
 * Every mark's element carries data-mark-id and its class (e.g. "mark stop missed"), the cursor
 * data-lat / data-lon as received (WGS-84), so tests and screen readers find them. */
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 600;
  const PAD = 30;

  function node(tag, attrs, parent) {
    const el = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (name) { el.setAttribute(name, attrs[name]); });
    if (parent) parent.appendChild(el);
    return el;
  }

  function TrackMap(container) {
    this.container = container;
    this.base = XC.mapConfig && XC.mapConfig() ? new XC.BaseMap(container) : null;
    this.layers = [];
    this.cursor = null;
    if (!this.base) {
      container.textContent = "";
      this.svg = node("svg", { viewBox: "0 0 " + WIDTH + " 300", role: "img", class: "track-svg" }, container);
      this.title = node("title", {}, this.svg);
    }
  }

  /** ``what``: {lines: [{points: [[lat, lon]…], className}], marks: [{id, lat, lon, className,
   * label, labelled}], caption}. Replaces what was drawn and fits it into view. */
  TrackMap.prototype.draw = function (what) {
    this.cursor = null;
    if (this.base) return this.drawBase(what);
    const svg = this.svg;
    while (svg.lastChild !== this.title) svg.removeChild(svg.lastChild);
    this.title.textContent = what.caption || "";
    const points = [];
    what.lines.forEach(function (l) { l.points.forEach(function (p) { points.push(p); }); });
    what.marks.forEach(function (m) { points.push([m.lat, m.lon]); });
    if (!points.length) return;
    const fit = XC.fitPoints(points, WIDTH, PAD, 240, 560);
    const height = fit.height;
    this.project = fit.project;
    svg.setAttribute("viewBox", "0 0 " + WIDTH + " " + height);
    const self = this;
    what.lines.forEach(function (l) {
      if (l.points.length < 2) return;
      const pts = l.points.map(function (p) { return self.project(p[0], p[1]).map(function (v) {
        return v.toFixed(1); }).join(","); }).join(" ");
      if (l.className === "planned") node("polyline", { points: pts, class: "planned" }, svg);
      node("polyline", { points: pts, class: l.className === "planned" ? "planned-line" : l.className }, svg);
    });
    what.marks.forEach(function (m) {
      const xy = self.project(m.lat, m.lon);
      const g = node("g", { class: "mark " + (m.className || ""), "data-mark-id": m.id,
                            transform: "translate(" + xy[0].toFixed(1) + " " + xy[1].toFixed(1) + ")" }, svg);
      node("circle", { r: /\bstop\b/.test(m.className) ? 7 : /\bvehicle\b/.test(m.className) ? 8 : 5 }, g);
      if (/\bmissed\b/.test(m.className)) node("path", { d: "M-11,-11 L11,11 M11,-11 L-11,11" }, g);
      node("title", {}, g).textContent = m.label || "";
      if (m.labelled) {
        const right = xy[0] < WIDTH - 110;
        node("text", { x: right ? 12 : -12, y: 4, "text-anchor": right ? "start" : "end" }, g)
          .textContent = m.label;
      }
    });
  };

  TrackMap.prototype.drawBase = function (what) {
    const map = this.base.map;
    this.layers.forEach(function (l) { l.remove(); });
    this.layers = [];
    this.base.setCaption(what.caption || "");
    const self = this;
    const all = [];
    const toMap = function (p) { const q = XC.toMapLatLon(p[0], p[1]); all.push(q); return q; };
    const lines = what.lines.map(function (l) { return { cls: l.className, pts: l.points.map(toMap) }; });
    const marks = what.marks.map(function (m) { return { m: m, at: toMap([m.lat, m.lon]) }; });
    if (!all.length) return;
    map.fitBounds(L.latLngBounds(all), { padding: [24, 24], maxZoom: 16 });  // a view before layers
    lines.forEach(function (l) {
      if (l.pts.length < 2) return;
      self.layers.push(L.polyline(l.pts, { className: l.cls === "planned" ? "planned-line" : l.cls,
                                          interactive: false }).addTo(map));
    });
    marks.forEach(function (x) {
      const marker = L.circleMarker(x.at, { radius: /\bstop\b/.test(x.m.className) ? 8 : 5,
                                            className: "mark " + (x.m.className || "") }).addTo(map);
      marker.bindTooltip(XC.el("span", null, x.m.label || ""), {
        permanent: !!x.m.labelled, direction: "right", offset: [8, 0], className: "stop-label" });
      marker.getElement().setAttribute("data-mark-id", x.m.id);
      self.layers.push(marker);
    });
  };

  /** The replay's cursor at (lat, lon), WGS-84. */
  TrackMap.prototype.setCursor = function (lat, lon, label) {
    let el;
    if (this.base) {
      const at = XC.toMapLatLon(lat, lon);
      if (!this.cursor) {
        this.cursor = L.circleMarker(at, { radius: 9, className: "cursor", interactive: false }).addTo(this.base.map);
        this.layers.push(this.cursor);
      } else {
        this.cursor.setLatLng(at);
      }
      el = this.cursor.getElement();
    } else {
      if (!this.project) return;
      if (!this.cursor) {
        this.cursor = node("g", { class: "cursor" }, this.svg);
        node("circle", { r: 9 }, this.cursor);
        node("title", {}, this.cursor);
      }
      const xy = this.project(lat, lon);
      this.cursor.setAttribute("transform", "translate(" + xy[0].toFixed(1) + " " + xy[1].toFixed(1) + ")");
      this.cursor.querySelector("title").textContent = label || "";
      el = this.cursor;
    }
    el.setAttribute("data-lat", String(lat));
    el.setAttribute("data-lon", String(lon));
    el.setAttribute("aria-label", label || "");
  };

  TrackMap.prototype.resize = function () { if (this.base) this.base.map.invalidateSize(); };

  XC.TrackMap = TrackMap;
})();
