/* A route drawn as inline SVG: its path as a polyline, its stops as circles (the child's stop
 * larger) each labelled (XC.placeLabels), and the bus as a marker that moves. No map tiles: the drawing works
 * offline and needs no map provider (and no GCJ-02 question: it is drawn in WGS-84 as stored). */
(function () {
  "use strict";

  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 360;
  const PAD = 28;
  let ids = 0;

  function node(tag, attrs, parent) {
    const el = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (name) { el.setAttribute(name, attrs[name]); });
    if (parent) parent.appendChild(el);
    return el;
  }

  /** ``options``: path [[lat, lon]…], stops [{stop_id, name, lat, lon}], highlight (a stop_id). */
  function RouteMap(container, options) {
    const points = options.path.concat(options.stops.map(function (s) { return [s.lat, s.lon]; }));
    const fit = XC.fitPoints(points, WIDTH, PAD, 180, 420);
    const height = fit.height;
    this.project = fit.project;

    const captionId = "route-map-caption-" + (++ids);
    this.svg = node("svg", { viewBox: "0 0 " + WIDTH + " " + height, role: "img",
                             "aria-labelledby": captionId, class: "route-map" });
    this.title = node("title", { id: captionId }, this.svg);
    const self = this;
    const line = options.path.map(function (p) { return self.project(p[0], p[1]).join(","); }).join(" ");
    node("polyline", { points: line, class: "route-casing" }, this.svg);
    node("polyline", { points: line, class: "route-line" }, this.svg);

    this.stops = {};
    this.labels = [];
    options.stops.forEach(function (stop, i) {
      const xy = self.project(stop.lat, stop.lon);
      const mine = stop.stop_id === options.highlight;
      const group = node("g", { class: "stop" + (mine ? " child-stop" : ""),
                                transform: "translate(" + xy[0].toFixed(1) + " " + xy[1].toFixed(1) + ")",
                                "data-stop-id": stop.stop_id }, self.svg);
      const dot = node("circle", { r: mine ? 9 : 6 }, group);
      node("title", {}, group).textContent = stop.name;
      const label = node("text", { class: "stop-label", "data-stop-id": stop.stop_id }, group);
      label.textContent = stop.name;
      self.stops[stop.stop_id] = group;
      self.labels.push({ stopId: stop.stop_id, el: label, dot: dot, name: stop.name,
                         seq: String(i + 1), mine: mine,
                         end: i === 0 || i === options.stops.length - 1 });
    });
    this.next = null;
    this.bus = node("g", { class: "bus", visibility: "hidden" }, this.svg);
    node("circle", { r: 13, class: "bus-halo" }, this.bus);
    this.arrow = node("path", { d: "M0,-8 L6,6 L0,3 L-6,6 Z", class: "bus-arrow" }, this.bus);
    this.busTitle = node("title", {}, this.bus);
    container.textContent = "";
    container.appendChild(this.svg);
    this.placeLabels();
  }

  /** Every stop labelled: by name where it fits beside its dot (right, left, above, below)
   * without covering another label or dot, else by its number in the list under the map. The
   * child's stop and the next stop go first, then the route's ends, then the rest in order. */
  RouteMap.prototype.placeLabels = function () {
    const self = this;
    const rank = function (l) { return l.mine ? 0 : l.stopId === self.next ? 1 : l.end ? 2 : 3; };
    const order = this.labels.slice().sort(function (a, b) { return rank(a) - rank(b); });
    const put = function (label, text, x, y, anchor) {
      return function () {
        label.el.textContent = text;
        label.el.setAttribute("x", x);
        label.el.setAttribute("y", y);
        label.el.setAttribute("text-anchor", anchor);
        label.el.classList.toggle("stop-number", text !== label.name);
      };
    };
    XC.placeLabels(order.map(function (label) {
      const gap = label.mine ? 13 : 10;
      return { el: label.el, tries: [
        put(label, label.name, gap, 4, "start"), put(label, label.name, -gap, 4, "end"),
        put(label, label.name, 0, -gap - 3, "middle"), put(label, label.name, 0, gap + 11, "middle"),
        put(label, label.seq, gap - 2, 4, "start"), put(label, label.seq, -gap + 2, 4, "end"),
        put(label, label.seq, 0, -gap - 2, "middle"), put(label, label.seq, 0, gap + 10, "middle"),
        put(label, label.seq, gap - 3, -gap + 2, "start"), put(label, label.seq, -gap + 3, -gap + 2, "end"),
        put(label, label.seq, gap - 3, gap + 8, "start"), put(label, label.seq, -gap + 3, gap + 8, "end")] };
    }), this.labels.map(function (l) { return l.dot; })  // and the notes drawn over the map
      .concat(Array.prototype.slice.call(this.svg.parentNode ? this.svg.parentNode.querySelectorAll(".map-note, .hint") : [])),
    this.svg);
  };

  /** The stop the bus goes to next (its label placed early), or null. */
  RouteMap.prototype.setNext = function (stopId) {
    if (stopId === this.next) return;
    this.next = stopId;
    this.placeLabels();
  };

  /** A position that is old (no fix for minutes): the marker is drawn faded, not as live. */
  RouteMap.prototype.setStale = function (stale) {
    this.bus.classList.toggle("stale", !!stale);
    this.bus.setAttribute("data-stale", stale ? "true" : "false");
  };

  RouteMap.prototype.setCaption = function (text) { this.title.textContent = text; };

  RouteMap.prototype.setBus = function (lat, lon, heading, label) {
    const xy = this.project(lat, lon);
    // glide from stop to stop, but appear where the bus is (not slide in from the corner)
    this.bus.style.transition = this.bus.getAttribute("visibility") === "hidden" ? "none" : "";
    this.bus.setAttribute("transform", "translate(" + xy[0].toFixed(1) + " " + xy[1].toFixed(1) + ")");
    this.bus.setAttribute("data-lat", String(lat));
    this.bus.setAttribute("data-lon", String(lon));
    this.bus.setAttribute("visibility", "visible");
    if (typeof heading === "number") {
      this.arrow.setAttribute("transform", "rotate(" + Math.round(heading) + ")");
      this.arrow.removeAttribute("visibility");
    } else {
      this.arrow.setAttribute("visibility", "hidden");  // standing: no direction to show
    }
    this.busTitle.textContent = label || "";
  };

  RouteMap.prototype.hideBus = function () {
    this.bus.setAttribute("visibility", "hidden");
    this.bus.removeAttribute("data-lat");
    this.bus.removeAttribute("data-lon");
  };

  RouteMap.prototype.setStatus = function (stopId, status) {
    const group = this.stops[stopId];
    if (!group) return;
    group.classList.remove("visited", "missed", "upcoming");
    group.classList.add(status);
  };

  window.XC.RouteMap = RouteMap;
})();
