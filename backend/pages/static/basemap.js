/* The base map: Leaflet (served from the xstatic-leaflet package, no CDN) with the tiles the
 * server names in <script id="xc-map"> (backend/maps: its own /tiles from an MBTiles or PMTiles
 * file, or a tile server's URL template), and on it a route, its stops and the bus — the same
 * methods as the schematic XC.RouteMap, so the parents' page draws on either. Without that
 * element (no XIAOCHE_MAP_TILES) XC.mapConfig() is null and the pages keep the schematic view.
 *
 * Data stay WGS-84 everywhere (the API, the stream); when the tiles are GCJ-02 (AMap, Tencent)
 * every point is shifted here, with XC.gcj02 (the port of routing/gcj02.py), just before it is
 * drawn, so the bus sits on the road the tiles show. The marker keeps both: data-lat/data-lon as
 * received, data-map-lat/data-map-lon as drawn. */
(function () {
  "use strict";

  const holder = document.getElementById("xc-map");
  const config = holder ? JSON.parse(holder.textContent) : null;
  XC.mapConfig = function () { return config && typeof L !== "undefined" ? config : null; };
  if (!XC.mapConfig()) return;

  const ARROW = "M0,-8 L6,6 L0,3 L-6,6 Z";
  const BUS_ICON = '<svg viewBox="-15 -15 30 30" width="30" height="30" aria-hidden="true">' +
    '<circle r="12" class="bus-halo"></circle><path class="bus-arrow" d="' + ARROW + '"></path></svg>';

  /** [lat, lon] as drawn on the tiles. */
  function toMap(lat, lon) {
    return config.datum === "gcj02" ? XC.gcj02.fromWgs84(lat, lon) : [lat, lon];
  }
  XC.toMapLatLon = toMap;

  function words(text) {  // Leaflet puts attributions in as HTML: ours is plain text
    const span = document.createElement("span");
    span.textContent = text || "";
    return span.innerHTML;
  }

  function BaseMap(container, options) {
    container.textContent = "";
    container.classList.add("has-base-map");
    this.el = XC.el("div", "base-map");
    this.el.setAttribute("role", "region");
    container.appendChild(this.el);
    this.map = L.map(this.el, { scrollWheelZoom: false, zoomSnap: 1 });
    const map = this.map;
    config.layers.forEach(function (layer, i) {
      const opts = { maxZoom: 19, className: "base-tiles",
                     attribution: i === 0 ? words(config.attribution) : "" };
      if (typeof layer.maxNativeZoom === "number") opts.maxNativeZoom = layer.maxNativeZoom;
      if (typeof layer.minNativeZoom === "number") opts.minNativeZoom = layer.minNativeZoom;
      if (layer.bounds) opts.bounds = L.latLngBounds(layer.bounds);
      L.tileLayer(layer.url, opts).addTo(map);
    });
    this.stops = {};
    this.vehicles = {};
    this.bus = null;
    this.fitted = false;
    container.xcMap = this;  // for the page tests: the Leaflet map behind the drawing
    if (options && options.path) this.showRoute(options);
    else map.setView(config.layers[0].bounds ? L.latLngBounds(config.layers[0].bounds).getCenter()
                                             : [35.0, 105.0], config.layers[0].bounds ? 10 : 4);
  }

  /** ``options`` as XC.RouteMap's: path [[lat, lon]…], stops [{stop_id, name, lat, lon}],
   * highlight (a stop_id). */
  BaseMap.prototype.showRoute = function (options) {
    const self = this;
    const path = options.path.map(function (p) { return toMap(p[0], p[1]); });
    const stops = options.stops.map(function (s) { return toMap(s.lat, s.lon); });
    // the view first: Leaflet draws (and gives elements to) layers only on a map with a view
    this.map.fitBounds(L.latLngBounds(path.concat(stops)), { padding: [24, 24] });
    this.fitted = true;
    L.polyline(path, { className: "route-casing", interactive: false }).addTo(this.map);
    L.polyline(path, { className: "route-line", interactive: false }).addTo(this.map);
    this.labels = [];
    this.next = null;
    options.stops.forEach(function (stop, i) {
      const at = stops[i];
      const mine = stop.stop_id === options.highlight;
      const marker = L.circleMarker(at, { radius: mine ? 9 : 6, className: "stop" + (mine ? " child-stop" : "") })
        .addTo(self.map);
      const label = XC.el("span", null, stop.name);  // an element: a name is never markup
      marker.bindTooltip(label, { permanent: true, direction: "right", offset: [8, 0],
                                  className: "stop-label" + (mine ? " child-stop" : "") });
      marker.getElement().setAttribute("data-stop-id", stop.stop_id);
      self.stops[stop.stop_id] = marker;
      self.labels.push({ stopId: stop.stop_id, marker: marker, span: label, name: stop.name,
                         seq: String(i + 1), mine: mine,
                         end: i === 0 || i === options.stops.length - 1 });
    });
    this.placeLabels();
    this.map.on("zoomend", function () { self.placeLabels(); });
    this.map.on("resize", function () { self.placeLabels(); });
  };

  /** Every stop labelled, as on the schematic view (XC.RouteMap.placeLabels): the name to the
   * right or left of the dot where it covers no other label or dot, else the stop's number. */
  BaseMap.prototype.placeLabels = function () {
    const self = this;
    const rank = function (l) { return l.mine ? 0 : l.stopId === self.next ? 1 : l.end ? 2 : 3; };
    const order = this.labels.slice().sort(function (a, b) { return rank(a) - rank(b); });
    const put = function (label, text, direction) {
      return function () {
        const tooltip = label.marker.getTooltip();
        tooltip.options.direction = direction;
        tooltip.options.offset = [direction === "left" ? -8 : 8, 0];
        label.span.textContent = text;
        tooltip.getElement().classList.toggle("stop-number", text !== label.name);
        tooltip.update();
      };
    };
    const items = order.filter(function (l) { return l.marker.getTooltip().getElement(); })
      .map(function (label) {
        const el = label.marker.getTooltip().getElement();
        el.setAttribute("data-stop-id", label.stopId);
        return { el: el, tries: [put(label, label.name, "right"), put(label, label.name, "left"),
                                 put(label, label.seq, "right"), put(label, label.seq, "left")] };
      });
    const dots = this.labels.map(function (l) { return l.marker.getElement(); }).filter(Boolean);
    XC.placeLabels(items, dots, this.el);
  };

  BaseMap.prototype.setNext = function (stopId) {
    if (stopId === this.next) return;
    this.next = stopId;
    this.placeLabels();
  };

  BaseMap.prototype.setStale = function (stale) {
    this.stale = !!stale;
    const el = this.bus && this.bus.getElement();
    if (!el) return;
    el.classList.toggle("stale", this.stale);
    el.dataset.stale = this.stale ? "true" : "false";
  };

  BaseMap.prototype.setCaption = function (text) { this.el.setAttribute("aria-label", text); };

  BaseMap.prototype.setBus = function (lat, lon, heading, label) {
    const at = toMap(lat, lon);
    if (!this.bus) {
      this.bus = L.marker(at, { icon: L.divIcon({ className: "bus-marker", html: BUS_ICON,
                                                  iconSize: [30, 30], iconAnchor: [15, 15] }),
                                keyboard: false, interactive: false, zIndexOffset: 1000 })
        .addTo(this.map);
    } else {
      this.bus.setLatLng(at);
    }
    const el = this.bus.getElement();
    el.dataset.lat = String(lat);
    el.dataset.lon = String(lon);
    el.dataset.mapLat = String(at[0]);
    el.dataset.mapLon = String(at[1]);
    el.setAttribute("aria-label", label || "");
    el.setAttribute("role", "img");
    el.classList.toggle("stale", !!this.stale);
    el.dataset.stale = this.stale ? "true" : "false";
    const arrow = el.querySelector(".bus-arrow");
    if (typeof heading === "number") {
      arrow.setAttribute("transform", "rotate(" + Math.round(heading) + ")");
      arrow.removeAttribute("visibility");
    } else {
      arrow.setAttribute("visibility", "hidden");  // standing: no direction to show
    }
  };

  BaseMap.prototype.hideBus = function () {
    if (this.bus) { this.bus.remove(); this.bus = null; }
  };

  BaseMap.prototype.setStatus = function (stopId, status) {
    const marker = this.stops[stopId];
    if (!marker || !marker.getElement()) return;
    const el = marker.getElement();
    el.classList.remove("visited", "missed", "upcoming");
    el.classList.add(status);
  };

  /** The staff's map: one marker per vehicle (``kind``: school_bus, teacher_car, meal_truck). */
  BaseMap.prototype.setVehicle = function (id, lat, lon, kind, online, label) {
    const at = toMap(lat, lon);
    let marker = this.vehicles[id];
    if (!marker) {
      marker = L.marker(at, { icon: L.divIcon({ className: "vehicle-marker", iconSize: [16, 16],
                                                iconAnchor: [8, 8] }),
                              keyboard: false, title: "" }).addTo(this.map);
      marker.bindTooltip(XC.el("span", null, id), { permanent: true, direction: "right",
                                                     offset: [8, 0], className: "vehicle-label" });
      this.vehicles[id] = marker;
    } else {
      marker.setLatLng(at);
    }
    const el = marker.getElement();
    el.dataset.vehicleId = id;
    el.dataset.kind = kind || "";
    el.dataset.lat = String(lat);
    el.dataset.lon = String(lon);
    el.classList.toggle("offline", !online);
    el.setAttribute("aria-label", label || id);
  };

  /** Fit the vehicles into view, once (a user's own pan and zoom are left alone after). */
  BaseMap.prototype.fitVehicles = function () {
    const ids = Object.keys(this.vehicles);
    if (this.fitted || !ids.length) return;
    const self = this;
    const bounds = L.latLngBounds(ids.map(function (id) { return self.vehicles[id].getLatLng(); }));
    this.map.fitBounds(bounds.pad(0.2), { padding: [24, 24], maxZoom: 15 });
    this.fitted = true;
  };

  XC.BaseMap = BaseMap;
})();
