/* WGS-84 -> GCJ-02, the datum AMap and Tencent tiles are drawn in: a line-by-line port of
 * routing/gcj02.py (wgs84_to_gcj02, its out_of_china box and _offset_deg series, the same
 * constants in the same order of operations). tests/e2e/test_maps.py checks that it equals
 * the Python at sample points across China and outside it. Only the forward direction: the
 * pages draw WGS-84 data on GCJ-02 tiles. */
(function () {
  "use strict";

  const A = 6378245.0;  // Krasovsky 1940 semi-major axis, metres
  const EE = 0.00669342162296594323;  // Krasovsky 1940 first eccentricity squared
  const PI = Math.PI;

  function outOfChina(lat, lon) {
    return !(0.8293 <= lat && lat <= 55.8271 && 72.004 <= lon && lon <= 137.8347);
  }

  function offsetDeg(lat, lon) {
    const x = lon - 105.0;
    const y = lat - 35.0;
    const sqrtAbsX = Math.sqrt(Math.abs(x));
    const common = (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0;
    let dLat = (-100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrtAbsX + common
                + (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0
                + (160.0 * Math.sin(y / 12.0 * PI) + 320.0 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0);
    let dLon = (300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrtAbsX + common
                + (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0
                + (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0);
    const radLat = lat / 180.0 * PI;
    const magic = 1.0 - EE * Math.pow(Math.sin(radLat), 2);
    const sqrtMagic = Math.sqrt(magic);
    dLat = dLat * 180.0 / ((A * (1.0 - EE)) / (magic * sqrtMagic) * PI);
    dLon = dLon * 180.0 / (A / sqrtMagic * Math.cos(radLat) * PI);
    return [dLat, dLon];
  }

  /** [lat, lon] in GCJ-02 of a WGS-84 point; unchanged outside China. */
  function fromWgs84(lat, lon) {
    if (outOfChina(lat, lon)) return [lat, lon];
    const d = offsetDeg(lat, lon);
    return [lat + d[0], lon + d[1]];
  }

  window.XC = window.XC || {};
  window.XC.gcj02 = { fromWgs84: fromWgs84, outOfChina: outOfChina };
})();
