// The case-worker page. The session token lives in this variable only (never in storage),
// and codes are shown once and cleared from the page when dismissed. A one-time password
// is kept in `pending` only until the new password replaces it.
"use strict";

let token = null;
let pending = null;
const $ = (id) => document.getElementById(id);

function show(id, visible) { $(id).hidden = !visible; }
function fail(id, message) { $(id).textContent = message; show(id, true); }

async function call(path, body, accept) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  if (accept) headers["Accept"] = accept;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  if (!response.ok) {
    let message = "Request failed (" + response.status + ")";
    let code = "";
    try {
      const body = await response.json();
      message = body.message || message;
      code = body.error || "";
    } catch (_) { /* not JSON */ }
    if (response.status === 401 && path !== "/v1/session") signedOut();
    const error = new Error(message);
    error.code = code;
    throw error;
  }
  return response;
}

function signedOut() {
  token = null;
  pending = null;
  show("issue", false);
  show("new-password", false);
  show("sign-in", true);
  clearCode();
}

function clearCode() {
  $("issued-code").textContent = "";
  $("issued-expiry").textContent = "";
  $("issued-reference").textContent = "";
  show("issued", false);
}

function codeRequest(count) {
  const onset = $("issue-onset").value;
  const body = { test_type: $("issue-test-type").value, count };
  if (onset) body.symptom_onset = onset;
  return body;
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show("sign-in-error", false);
    const body = { name: $("sign-in-name").value, password: $("sign-in-password").value };
    const second = $("sign-in-totp").value.trim();
    if (second) body[/^[0-9]{6}$/.test(second) ? "totp" : "recovery_code"] = second;
    try {
      const response = await call("/v1/session", body);
      const session = await response.json();
      token = session.token;
      show("sign-in", false);
      if (session.password_change_required) {
        pending = body.password;
        show("new-password", true);
        $("new-password-value").focus();
      } else {
        show("issue", true);
      }
      $("sign-in-password").value = "";
      $("sign-in-totp").value = "";
      show("sign-in-second", false);
    } catch (e) {
      if (e.code === "totp-required") {
        show("sign-in-second", true);
        $("sign-in-totp").focus();
      }
      fail("sign-in-error", e.message);
    }
  });

  $("new-password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show("new-password-error", false);
    const value = $("new-password-value").value;
    if (value !== $("new-password-again").value) {
      fail("new-password-error", "The two passwords differ.");
      return;
    }
    try {
      await call("/v1/session/password", { current_password: pending, new_password: value });
      pending = null;
      $("new-password-value").value = "";
      $("new-password-again").value = "";
      show("new-password", false);
      show("issue", true);
    } catch (e) {
      fail("new-password-error", e.message);
    }
  });

  $("issue-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show("issue-error", false);
    clearCode();
    try {
      const response = await call("/v1/codes", codeRequest(1));
      const issued = (await response.json()).codes[0];
      $("issued-code").textContent = issued.code;
      $("issued-expiry").textContent = issued.expires_at_utc;
      $("issued-expiry").setAttribute("datetime", issued.expires_at_utc);
      $("issued-reference").textContent = issued.reference;
      show("issued", true);
    } catch (e) {
      fail("issue-error", e.message);
    }
  });

  $("issued-dismiss").addEventListener("click", clearCode);

  $("bulk-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("bulk-status").textContent = "Issuing…";
    try {
      const count = parseInt($("bulk-count").value, 10);
      const response = await call("/v1/codes", codeRequest(count), "text/csv");
      const csv = await response.text();
      const link = $("bulk-download");
      if (link.href) URL.revokeObjectURL(link.href);
      link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
      link.hidden = false;
      link.click();
      $("bulk-status").textContent = count + " codes issued.";
    } catch (e) {
      $("bulk-status").textContent = e.message;
    }
  });

  $("sign-out").addEventListener("click", async () => {
    if (token) {
      try {
        await fetch("/v1/session", { method: "DELETE", headers: { Authorization: "Bearer " + token } });
      } catch (_) { /* signing out locally is enough */ }
    }
    signedOut();
  });
});
