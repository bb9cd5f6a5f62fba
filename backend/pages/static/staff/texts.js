/* Texts to a driver, on the vehicles screen (logistics in scope, admin): a vehicle picked from
 * those the user sees, a short text (shown, or read aloud when marked urgent, by the vehicle's
 * JT/T 808 terminal) sent with POST /api/v1/vehicles/{id}/texts, and the vehicle's texts with
 * their status (GET …/texts, newest first): 排队中, 已发送, 已送达, 失败, 不支持, 已过期, 未回复. A vehicle
 * without a terminal is told apart by the API's 409, which the form says in words. */
(function () {
  "use strict";

  const S = XC.staff;
  const t = XC.t;
  const $ = function (id) { return document.getElementById(id); };
  let texts = [];
  let shownFor = null;
  let problem = null;  // the last refusal: {status, detail, vehicle}, said again on a language change

  function fillVehicles() {
    const select = $("text-vehicle");
    const chosen = select.value;
    const ids = S.vehicles().map(function (v) { return v.vehicle_id; });
    if (ids.join() === Array.prototype.map.call(select.options, function (o) { return o.value; }).join()) {
      if (shownFor) load().catch(function () { /* the next refresh tries again */ });  // statuses move on
      return;
    }
    select.textContent = "";
    ids.forEach(function (id) {
      const option = XC.el("option", "", id);
      option.value = id;
      select.appendChild(option);
    });
    if (chosen && ids.indexOf(chosen) >= 0) select.value = chosen;
    if (select.value && select.value !== shownFor) load().catch(XC.showError);
  }

  async function load() {
    const id = $("text-vehicle").value;
    if (!id) return;
    const answer = await XC.api("/api/v1/vehicles/" + encodeURIComponent(id) + "/texts");
    if ($("text-vehicle").value !== id) return;  // another vehicle was picked meanwhile
    shownFor = id;
    texts = answer.items;
    render();
  }

  function render() {
    const list = $("texts");
    list.textContent = "";
    texts.forEach(function (x) {
      const li = XC.el("li", "text-item " + x.status);
      li.dataset.status = x.status;
      li.dataset.textId = x.id;
      const badge = x.status === "ok" ? "ok" : x.status === "queued" || x.status === "sent" ? "pending" : "warn";
      li.appendChild(XC.el("span", "badge " + badge, t("texts.status." + x.status)));
      if (x.emergency) li.appendChild(XC.el("span", "badge warn urgent", t("texts.urgent")));
      li.appendChild(XC.el("span", "text-body", x.text));
      li.appendChild(XC.el("span", "hint", t("texts.item", { when: S.dateTime(x.created_at), who: x.created_by })));
      list.appendChild(li);
    });
    $("no-texts").hidden = texts.length > 0;
    sayProblem();
  }

  function sayProblem() {
    if (!problem) return;
    const note = $("text-status");
    note.className = "error";
    note.textContent = problem.status === 409 ? t("texts.noTerminal", { vehicle: problem.vehicle })
      : S.problem(problem);
  }

  $("text-vehicle").addEventListener("change", function () {
    problem = null;
    $("text-status").textContent = "";
    $("text-status").className = "";
    texts = [];
    render();
    load().catch(XC.showError);
  });

  $("text-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const id = $("text-vehicle").value;
    const note = $("text-status");
    problem = null;
    note.className = "";
    note.textContent = "";
    try {
      await XC.api("/api/v1/vehicles/" + encodeURIComponent(id) + "/texts", {
        method: "POST", body: { text: $("text-body").value, emergency: $("text-emergency").checked } });
      note.textContent = t("texts.queued");
      $("text-body").value = "";
      $("text-emergency").checked = false;
      await load();
    } catch (e) {
      if (e.status !== 409 && e.status !== 422) throw e;
      problem = { status: e.status, detail: e.detail, message: e.message, vehicle: id };
      sayProblem();
    }
  });

  S.texts = { vehicles: fillVehicles, reload: function () { return load(); } };
  XC.onLanguage(function () { render(); });
})();
