/* Routes (线路): a message to every parent of a route's riders (POST /api/v1/routes/{id}/messages
 * — a delay, a road closure), and the substitute bus of a day
 * (GET | PUT | DELETE /api/v1/routes/{id}/vehicle?date=): who drives the route that day, a spare
 * bus put in, or the substitute cancelled. Messages sent from this page are listed under the form. */
(function () {
  "use strict";

  const S = XC.staff;
  const t = XC.t;
  const $ = function (id) { return document.getElementById(id); };
  const sent = [];
  let buses = null;

  /* The route and bus lists, filled once: the screen may be shown twice before the first
   * answers arrive (its first show and a hash change), and two fills would list everything twice. */
  let lists = null;
  function loadLists() {
    if (!lists) {
      lists = (async function () {
        const dir = await S.directory();
        const select = $("routes-route");
        select.textContent = "";
        $("sub-buses").textContent = "";
        dir.routes.forEach(function (r) {
          const o = XC.el("option", "", r.name);
          o.value = r.route_id;
          select.appendChild(o);
        });
        buses = (await XC.api("/api/v1/vehicles/live")).filter(function (v) { return v.kind === "school_bus"; });
        buses.forEach(function (v) {
          const o = XC.el("option", "", v.vehicle_id + (v.plate ? " · " + v.plate : ""));
          o.value = v.vehicle_id;
          $("sub-buses").appendChild(o);  // a spare bus of no route is typed in: staff do not see it
        });
      })();
      lists.catch(function () { lists = null; });  // a failed load is tried again on the next show
    }
    return lists;
  }

  async function fill(params) {
    await loadLists();
    if (params.route) $("routes-route").value = params.route;
  }

  async function loadVehicle() {
    const route = $("routes-route").value;
    if (!route) return;
    const who = await XC.api("/api/v1/routes/" + encodeURIComponent(route) + "/vehicle?date=" + $("sub-date").value);
    const line = $("sub-current");
    line.dataset.substitute = String(who.substitute);
    line.textContent = who.substitute
      ? t("routes.substituted", { vehicle: who.vehicle_id, who: who.set_by, when: S.dateTime(who.set_at) })
      : t("routes.regular", { vehicles: who.vehicle_ids.join("、") || "—" });
    $("sub-cancel").hidden = !who.substitute;
  }

  function renderSent() {
    const list = $("messages-sent");
    list.textContent = "";
    sent.forEach(function (m) {
      const li = XC.el("li", "notification");
      li.append(XC.el("strong", "", m.title), " ",
                XC.el("span", "hint", t("routes.sentTo", { route: m.name, n: m.recipients, time: XC.time(m.created_at) })));
      li.appendChild(XC.el("p", "notification-body", m.body));
      list.appendChild(li);
    });
  }

  $("message-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    const route = $("routes-route").value;
    const body = { title: $("message-title").value.trim(), body: $("message-body").value.trim() };
    const status = $("message-status");
    if (!body.title || !body.body) { status.textContent = t("routes.needText"); return; }
    $("message-send").disabled = true;
    try {
      const answer = await XC.api("/api/v1/routes/" + encodeURIComponent(route) + "/messages",
                                  { method: "POST", body: body });
      const name = $("routes-route").selectedOptions[0].textContent;
      sent.unshift(Object.assign({ name: name }, body, answer));
      status.textContent = t("routes.sent", { n: answer.recipients });
      $("message-title").value = "";
      $("message-body").value = "";
      renderSent();
    } catch (e) {
      status.textContent = e.message;
    } finally {
      $("message-send").disabled = false;
    }
  });

  $("sub-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    try {
      await XC.api("/api/v1/routes/" + encodeURIComponent($("routes-route").value) + "/vehicle?date=" +
                   $("sub-date").value, { method: "PUT", body: { vehicle_id: $("sub-vehicle").value } });
      await loadVehicle();
    } catch (e) { XC.showError(e); }
  });
  $("sub-cancel").addEventListener("click", async function () {
    try {
      await XC.api("/api/v1/routes/" + encodeURIComponent($("routes-route").value) + "/vehicle?date=" +
                   $("sub-date").value, { method: "DELETE" });
      await loadVehicle();
    } catch (e) { XC.showError(e); }
  });
  $("routes-route").addEventListener("change", function () { loadVehicle().catch(XC.showError); });
  $("sub-date").addEventListener("change", function () { if (this.value) loadVehicle().catch(XC.showError); });

  S.screen("routes", {
    show: async function (params) {
      if (!$("sub-date").value) $("sub-date").value = S.today();
      $("sub-date").min = S.today();
      await fill(params);
      return loadVehicle();
    },
  });
  XC.onLanguage(function () { renderSent(); if ($("routes-route").value) loadVehicle().catch(XC.showError); });
})();
