/* The login page: POST /api/v1/auth/token, keep the token in sessionStorage, go to the page of
 * the role (parents: /parent, logistics and admin: /staff). */
(function () {
  "use strict";

  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const submit = document.getElementById("login-submit");
  let errorKey = null;
  let errorParams = null;

  function showError(key, params) {
    errorKey = key;
    errorParams = params || null;
    error.textContent = XC.t(key, params);
    error.hidden = false;
  }
  XC.onLanguage(function () { if (errorKey) showError(errorKey, errorParams); });

  const notice = XC.takeNotice();
  if (notice) showError(notice);
  else if (XC.token() && XC.pageFor(XC.role())) {
    window.location.replace(XC.pageFor(XC.role()));  // still logged in in this tab
    return;
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const username = form.username.value.trim();
    const password = form.password.value;
    if (!username || !password) {
      showError("err.missing");
      (username ? form.password : form.username).focus();
      return;
    }
    submit.disabled = true;
    submit.dataset.i18n = "login.busy";
    submit.textContent = XC.t("login.busy");
    try {
      const body = await XC.api("/api/v1/auth/token", {
        method: "POST", auth: false, body: { username: username, password: password } });
      const page = XC.pageFor(body.role);
      if (!page) {
        showError("err.wrongRole", { role: body.role });
        return;
      }
      XC.saveLogin(body.access_token, body.role);
      window.location.assign(page);
    } catch (e) {
      if (e instanceof XC.ApiError && e.status === 401) showError("err.badLogin");
      else if (e instanceof XC.ApiError) showError(e.key, e.params);
      else showError("err.page");
      form.password.select();
      form.password.focus();
    } finally {
      submit.disabled = false;
      submit.dataset.i18n = "login.submit";
      submit.textContent = XC.t("login.submit");
    }
  });
})();
