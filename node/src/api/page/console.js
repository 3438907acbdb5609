// The authority's console. The session token is in an HttpOnly cookie this script never
// sees; the script holds only the session's CSRF token (in `csrf`, never in storage) and
// sends it as X-CSRF-Token with every request. Codes, one-time passwords, keys and
// recovery codes are shown once and cleared from the page when dismissed or on sign-out.
// Sections are shown by the account's roles; the node checks every route all the same.
"use strict";

let csrf = null;
let pending = null; // the one-time password, until the new password replaces it
let auditNext = null;
let chartUrl = null; // the statistics chart, fetched with the CSRF token and shown from memory
let venueUrls = []; // a new venue's QR code, trace code and instructions, until dismissed
const $ = (id) => document.getElementById(id);

function show(id, visible) { $(id).hidden = !visible; }
function say(message) { $("console-status").textContent = message; }
function focusOn(id) { $(id).focus(); }
function fail(id, message) { $(id).textContent = message; show(id, true); focusOn(id); }
function done(id, message) { $(id).textContent = message; focusOn(id); }
function cell(row, text) { const td = row.insertCell(); td.textContent = text; return td; }

// One request with the session's CSRF token; throws an Error with the node's message and
// code. A session that ended (signed out elsewhere, disabled, expired) signs the page out.
async function api(method, path, body, accept) {
  const headers = {};
  if (csrf) headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (accept) headers["Accept"] = accept;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let message = "Request failed (" + response.status + ")";
    let code = "";
    try {
      const error = await response.json();
      message = error.message || message;
      code = error.error || "";
    } catch (_) { /* not JSON */ }
    if (csrf && (code === "session-ended" || code === "unauthorized")) {
      signedOut("Your session has ended: " + message);
    }
    const error = new Error(message);
    error.code = code;
    error.status = response.status;
    throw error;
  }
  return response;
}

function download(linkId, name, text, type) {
  const link = $(linkId);
  if (link.href) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  link.hidden = false;
  link.click();
}

function clearSecrets() {
  for (const id of ["issued-code", "issued-expiry", "issued-reference", "account-created-name",
    "account-created-password", "key-created-secret", "totp-secret", "totp-uri", "totp-recovery"]) {
    $(id).textContent = "";
  }
  for (const id of ["issued", "account-created", "key-created", "totp-enrol", "totp-recovery-box"]) {
    show(id, false);
  }
  $("venue-trace-code").value = "";
  clearVenue();
}

// A new venue leaves the page: its blob: URLs are revoked, its texts cleared.
function clearVenue() {
  for (const url of venueUrls) URL.revokeObjectURL(url);
  venueUrls = [];
  for (const id of ["venue-qr", "venue-qr-download", "venue-trace-download", "venue-instructions-download"]) {
    $(id).removeAttribute(id === "venue-qr" ? "src" : "href");
  }
  $("venue-qr").alt = "";
  $("venue-qr-text").textContent = "";
  $("venue-validity").textContent = "";
  show("venue-made", false);
}

// A made venue: the QR code shown from memory (the page's CSP allows images from blob:
// only), each file offered as a download from memory.
function showVenue(made) {
  clearVenue();
  const url = (text, type) => {
    const href = URL.createObjectURL(new Blob([text], { type }));
    venueUrls.push(href);
    return href;
  };
  const svg = url(made.qr_svg, "image/svg+xml");
  $("venue-qr").src = svg;
  $("venue-qr").alt = "The venue's entry QR code, to print";
  $("venue-qr-download").href = svg;
  $("venue-trace-download").href = url(made.trace_code + "\n", "text/plain");
  $("venue-instructions-download").href = url(made.instructions, "text/plain");
  $("venue-qr-text").textContent = made.qr_text;
  $("venue-validity").textContent = made.valid_from + " to " + made.valid_until + " (UTC days)";
  show("venue-made", true);
}

function signedOut(message) {
  csrf = null;
  pending = null;
  clearSecrets();
  for (const table of ["accounts-table", "keys-table", "audit-table", "stats-table"]) {
    $(table).tBodies[0].replaceChildren();
  }
  clearChart();
  for (const id of ["status-result", "audit-verified", "whoami", "password-result", "totp-result",
    "accounts-result", "keys-result", "bulk-status", "stats-note"]) {
    $(id).textContent = "";
  }
  show("console", false);
  show("new-password", false);
  show("sign-in", true);
  say(message);
  focusOn("sign-in-name");
}

// Shows what the session's account may use; a restricted session sees only its one step.
function enter(session) {
  show("sign-in", false);
  if (session.password_change_required) {
    show("new-password-current-box", pending === null);
    $("new-password-current").required = pending === null;
    show("new-password", true);
    focusOn("new-password-value");
    return;
  }
  show("new-password", false);
  const roles = session.roles || [];
  const restricted = session.totp_enrolment_required;
  for (const section of document.querySelectorAll("section[data-roles]")) {
    const allowed = section.dataset.roles.split(" ").some((r) => roles.includes(r));
    section.hidden = restricted || !allowed;
  }
  $("whoami").textContent = "Signed in as " + session.account + " (" + roles.join(", ") + ")";
  $("totp-state").textContent = session.totp
    ? "Your account has an authenticator app. Setting up a new one replaces it."
    : (restricted ? "This node requires an authenticator app: set one up to go on."
      : "Your account has no second factor.");
  show("console", true);
  say("Signed in as " + session.account + ".");
  if (!restricted && roles.includes("admin")) { loadAccounts(); loadKeys(); }
  if (!restricted && (roles.includes("auditor") || roles.includes("admin"))) {
    loadAudit(false);
    loadStats();
  }
  focusOn(restricted ? "totp-begin" : "whoami");
}

async function resume() {
  try {
    const response = await fetch("/v1/session/csrf", { credentials: "same-origin" });
    if (!response.ok) { signedOut(""); return; }
    const session = await response.json();
    csrf = session.csrf_token;
    enter(session);
  } catch (_) {
    signedOut("");
  }
}

function codeRequest(prefix, count) {
  const body = { test_type: $(prefix + "-test-type").value, count };
  const onset = $(prefix + "-onset").value;
  if (onset) body.symptom_onset = onset;
  return body;
}

function describeStatus(s) {
  let text = "Code " + s.reference + " (" + s.test_type + "): " + s.status;
  if (s.changed) text += " on " + s.changed;
  return text + ". Issued " + s.issued + ", valid until " + s.expires + ".";
}

async function lookUp(revoke) {
  show("status-error", false);
  const reference = $("status-reference").value.trim().toUpperCase();
  if (!reference) { fail("status-error", "Type the code's reference first."); return; }
  try {
    const path = "/v1/codes/" + encodeURIComponent(reference) + (revoke ? "/revoke" : "");
    const response = await api(revoke ? "POST" : "GET", path);
    done("status-result", (revoke ? "Revoked. " : "") + describeStatus(await response.json()));
  } catch (e) {
    $("status-result").textContent = "";
    fail("status-error", e.message);
  }
}

function rowButton(td, id, text, handler) {
  const button = document.createElement("button");
  button.type = "button";
  button.id = id;
  button.textContent = text;
  button.addEventListener("click", handler);
  td.append(button);
  return button;
}

async function accountAction(name, path, body, message) {
  try {
    const response = await api("POST", "/v1/accounts/" + encodeURIComponent(name) + path, body);
    if (path === "/reset-password") {
      const reset = await response.json();
      $("account-created-name").textContent = reset.name;
      $("account-created-password").textContent = reset.password;
      show("account-created", true);
    }
    await loadAccounts();
    done("accounts-result", message);
  } catch (e) {
    done("accounts-result", "Refused: " + e.message);
  }
}

async function loadAccounts() {
  try {
    const accounts = await (await api("GET", "/v1/accounts")).json();
    const body = $("accounts-table").tBodies[0];
    body.replaceChildren();
    for (const a of accounts) {
      const row = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = a.name;
      row.append(th);
      cell(row, a.roles.join(", "));
      cell(row, (a.enabled ? "enabled" : "disabled") + (a.totp ? ", TOTP" : "")
        + (a.password_change_required ? ", must set password" : ""));
      const actions = row.insertCell();
      const id = "account-" + a.name;
      if (a.enabled) {
        rowButton(actions, id + "-disable", "Disable " + a.name,
          () => accountAction(a.name, "/disable", undefined, a.name + " is disabled; its sessions ended."));
      } else {
        rowButton(actions, id + "-enable", "Enable " + a.name,
          () => accountAction(a.name, "/enable", undefined, a.name + " is enabled."));
      }
      rowButton(actions, id + "-reset", "Reset password of " + a.name,
        () => accountAction(a.name, "/reset-password", undefined, "New one-time password for " + a.name + " shown below."));
      const label = document.createElement("label");
      label.htmlFor = id + "-roles";
      label.textContent = "Roles of " + a.name + " (comma-separated)";
      const input = document.createElement("input");
      input.id = id + "-roles";
      input.value = a.roles.join(", ");
      actions.append(label, input);
      rowButton(actions, id + "-roles-set", "Set roles of " + a.name, () => {
        const roles = input.value.split(",").map((r) => r.trim()).filter((r) => r);
        accountAction(a.name, "/roles", { roles }, "Roles of " + a.name + " set.");
      });
    }
  } catch (e) {
    done("accounts-result", "Could not list accounts: " + e.message);
  }
}

async function loadKeys() {
  try {
    const keys = await (await api("GET", "/v1/api-keys")).json();
    const body = $("keys-table").tBodies[0];
    body.replaceChildren();
    for (const k of keys) {
      const row = body.insertRow();
      cell(row, k.id).className = "mono";
      cell(row, k.name);
      cell(row, k.test_types.length ? k.test_types.join(", ") : "any");
      cell(row, k.last_used || "never");
      const state = row.insertCell();
      if (k.revoked) {
        state.textContent = "revoked " + k.revoked;
      } else {
        rowButton(state, "key-" + k.id + "-revoke", "Revoke key " + k.name, async () => {
          try {
            await api("POST", "/v1/api-keys/" + encodeURIComponent(k.id) + "/revoke");
            await loadKeys();
            done("keys-result", "Key " + k.name + " is revoked.");
          } catch (e) {
            done("keys-result", "Refused: " + e.message);
          }
        });
      }
    }
  } catch (e) {
    done("keys-result", "Could not list keys: " + e.message);
  }
}

const AUDIT_PAGE = 50;

async function loadAudit(more) {
  show("audit-error", false);
  try {
    const after = more && auditNext !== null ? auditNext : 0;
    const page = await (await api("GET", "/v1/audit?limit=" + AUDIT_PAGE + "&after=" + after)).json();
    const body = $("audit-table").tBodies[0];
    if (!more) body.replaceChildren();
    for (const r of page.records) {
      const row = body.insertRow();
      cell(row, String(r.sequence));
      cell(row, r.minute_utc);
      cell(row, r.actor);
      cell(row, r.action);
      cell(row, r.outcome);
    }
    $("audit-verified").textContent = page.verified
      ? "The trail verifies: " + page.records_checked + " records checked, signed head " + (page.head_sequence ?? "none") + "."
      : "The trail does NOT verify: " + (page.problem || "unknown problem") + ".";
    $("audit-verified").className = page.verified ? "" : "error";
    auditNext = page.next_after ?? null;
    show("audit-more", auditNext !== null);
  } catch (e) {
    fail("audit-error", e.message);
  }
}

async function auditDownload(csv) {
  show("audit-error", false);
  try {
    const response = await api("GET", "/v1/audit?limit=10000", undefined, csv ? "text/csv" : "application/json");
    download("audit-download", csv ? "audit.csv" : "audit.json", await response.text(),
      csv ? "text/csv" : "application/json");
    say("Audit log downloaded as " + (csv ? "CSV" : "JSON") + ".");
  } catch (e) {
    fail("audit-error", e.message);
  }
}

function clearChart() {
  if (chartUrl) URL.revokeObjectURL(chartUrl);
  chartUrl = null;
  $("stats-chart").removeAttribute("src");
  show("stats-chart", false);
}

// The range as asked, for a query string (empty fields: the node's default range).
function statsRange() {
  const query = [];
  for (const [name, id] of [["from", "stats-from"], ["to", "stats-to"]]) {
    if ($(id).value) query.push(name + "=" + $(id).value);
  }
  return query;
}

// One figure per day and test type as a table (the node's own suppression, "<5", shown as
// it comes) and as the chart the node draws, fetched with the CSRF token like every request.
async function loadStats() {
  show("stats-error", false);
  const metric = $("stats-metric").value;
  const label = $("stats-metric").selectedOptions[0].textContent;
  try {
    const range = statsRange();
    const report = await (await api("GET", "/v1/stats" + (range.length ? "?" + range.join("&") : ""))).json();
    const rows = report.rows.filter((r) => r.metric === metric);
    const types = [...new Set(rows.map((r) => r.test_type || "all"))];
    const head = $("stats-table").tHead.rows[0];
    head.replaceChildren();
    for (const title of ["Day (UTC)", ...types]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = title;
      head.appendChild(th);
    }
    const body = $("stats-table").tBodies[0];
    body.replaceChildren();
    for (const day of [...new Set(rows.map((r) => r.day))]) {
      const row = body.insertRow();
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = day;
      row.appendChild(th);
      for (const type of types) {
        const found = rows.find((r) => r.day === day && (r.test_type || "all") === type);
        cell(row, found ? String(found.count) : "0");
      }
    }
    $("stats-caption").textContent = label + " per UTC day, " + report.from + " to " + report.to;
    $("stats-note").textContent = "Counts from 1 to " + (report.min_count - 1) + " are shown as <" +
      report.min_count + ", so that no figure points at a person; there are no totals, which would give them away.";
    const svg = await (await api("GET", "/v1/stats/chart.svg?" + [...range, "metric=" + metric].join("&"))).blob();
    clearChart();
    chartUrl = URL.createObjectURL(svg);
    $("stats-chart").alt = label + " per day as a bar chart; the table below holds the same figures.";
    $("stats-chart").src = chartUrl;
    show("stats-chart", true);
  } catch (e) {
    fail("stats-error", e.message);
  }
}

async function statsDownload() {
  show("stats-error", false);
  try {
    const range = statsRange();
    const response = await api("GET", "/v1/stats" + (range.length ? "?" + range.join("&") : ""), undefined, "text/csv");
    download("stats-download", "statistics.csv", await response.text(), "text/csv");
    say("Statistics downloaded as CSV.");
  } catch (e) {
    fail("stats-error", e.message);
  }
}

// A form that creates something shown once (an account's one-time password, an API key):
// posts `body()` (null: refused before sending), shows the answer with `fill`, clears the
// form, reloads the list and moves the focus to what is shown.
function createdOnce(form, error, box, path, body, fill, reload) {
  $(form).addEventListener("submit", async (event) => {
    event.preventDefault();
    show(error, false);
    const payload = body();
    if (!payload) return;
    try {
      fill(await (await api("POST", path, payload)).json());
      show(box, true);
      $(form).reset();
      await reload();
      focusOn(box);
    } catch (e) {
      fail(error, e.message);
    }
  });
}

// The box's "Done" button: the secret leaves the page, the focus goes back to the form.
function dismissOnce(box, secrets, back) {
  $(box + "-dismiss").addEventListener("click", () => {
    for (const id of secrets) $(id).textContent = "";
    show(box, false);
    focusOn(back);
  });
}

function checked(selector) {
  return [...document.querySelectorAll(selector)].filter((box) => box.checked).map((box) => box.value);
}

document.addEventListener("DOMContentLoaded", () => {
  $("bulk-test-type").replaceChildren(...[...$("issue-test-type").options].map((o) => o.cloneNode(true)));
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show("sign-in-error", false);
    const body = { name: $("sign-in-name").value, password: $("sign-in-password").value };
    const second = $("sign-in-totp").value.trim();
    if (second) body[/^[0-9]{6}$/.test(second) ? "totp" : "recovery_code"] = second;
    try {
      const session = await (await api("POST", "/v1/session/cookie", body)).json();
      csrf = session.csrf_token;
      pending = session.password_change_required ? body.password : null;
      $("sign-in-password").value = "";
      $("sign-in-totp").value = "";
      show("sign-in-second", false);
      enter(session);
    } catch (e) {
      if (e.code === "totp-required") {
        show("sign-in-second", true);
        $("sign-in-error").textContent = e.message;
        show("sign-in-error", true);
        focusOn("sign-in-totp");
        return;
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
    const current = pending !== null ? pending : $("new-password-current").value;
    try {
      await api("POST", "/v1/session/password", { current_password: current, new_password: value });
      pending = null;
      for (const id of ["new-password-value", "new-password-again", "new-password-current"]) $(id).value = "";
      await resume();
      say("Password set. " + $("console-status").textContent);
    } catch (e) {
      fail("new-password-error", e.message);
    }
  });

  $("issue-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show("issue-error", false);
    clearSecrets();
    try {
      const issued = (await (await api("POST", "/v1/codes", codeRequest("issue", 1))).json()).codes[0];
      $("issued-code").textContent = issued.code;
      $("issued-expiry").textContent = issued.expires_at_utc;
      $("issued-expiry").setAttribute("datetime", issued.expires_at_utc);
      $("issued-reference").textContent = issued.reference;
      $("status-reference").value = issued.reference;
      show("issued", true);
      focusOn("issued");
    } catch (e) {
      fail("issue-error", e.message);
    }
  });
  $("issued-dismiss").addEventListener("click", () => { clearSecrets(); focusOn("issue-submit"); });

  $("status-form").addEventListener("submit", (event) => { event.preventDefault(); lookUp(false); });
  $("status-revoke").addEventListener("click", () => lookUp(true));

  $("bulk-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    done("bulk-status", "Issuing…");
    try {
      const count = parseInt($("bulk-count").value, 10);
      const response = await api("POST", "/v1/codes", codeRequest("bulk", count), "text/csv");
      download("bulk-download", "upload-codes.csv", await response.text(), "text/csv");
      done("bulk-status", count + " codes issued and downloaded as CSV.");
    } catch (e) {
      done("bulk-status", "Refused: " + e.message);
    }
  });

  $("venue-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show("venue-error", false);
    clearVenue();
    const body = { description: $("venue-description").value.trim(), address: $("venue-address").value.trim() };
    if ($("venue-from").value) body.valid_from = $("venue-from").value;
    if ($("venue-until").value) body.valid_until = $("venue-until").value;
    try {
      showVenue(await (await api("POST", "/v1/venues", body)).json());
      $("venue-form").reset();
      focusOn("venue-made");
    } catch (e) {
      fail("venue-error", e.message);
    }
  });
  $("venue-made-dismiss").addEventListener("click", () => { clearVenue(); focusOn("venue-description"); });

  // A venue trace: the trace code leaves the page once sent; the times are UTC.
  $("venue-trace-file").addEventListener("change", async () => {
    const file = $("venue-trace-file").files[0];
    if (file) $("venue-trace-code").value = (await file.text()).trim();
    $("venue-trace-file").value = "";
  });
  $("venue-trace-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show("venue-trace-error", false);
    $("venue-trace-done").textContent = "";
    const utc = (id) => Math.floor(Date.parse($(id).value + "Z") / 1000);
    const body = {
      trace_code: $("venue-trace-code").value.trim(),
      case_from: utc("venue-trace-from"),
      case_until: utc("venue-trace-until"),
      message: $("venue-trace-message").value.trim(),
    };
    if (!Number.isFinite(body.case_from) || !Number.isFinite(body.case_until)) {
      fail("venue-trace-error", "Give the case's arrival and departure.");
      return;
    }
    try {
      const traced = await (await api("POST", "/v1/venue-traces", body)).json();
      $("venue-trace-code").value = "";
      $("venue-trace-from").value = "";
      $("venue-trace-until").value = "";
      done("venue-trace-done", "Published as release " + traced.release + ": phones that checked in at this venue during these hours warn their users. The venue's name and the times stay sealed; the node kept no trace code.");
    } catch (e) {
      fail("venue-trace-error", e.message);
    }
  });

  $("accounts-refresh").addEventListener("click", loadAccounts);
  createdOnce("account-form", "account-error", "account-created", "/v1/accounts", () => {
    const roles = checked("#account-form input[type=checkbox]");
    if (roles.length === 0) { fail("account-error", "Tick at least one role."); return null; }
    return { name: $("account-name").value.trim(), roles };
  }, (created) => {
    $("account-created-name").textContent = created.name;
    $("account-created-password").textContent = created.password;
  }, loadAccounts);
  dismissOnce("account-created", ["account-created-name", "account-created-password"], "account-name");

  createdOnce("key-form", "key-error", "key-created", "/v1/api-keys",
    () => ({ name: $("key-name").value.trim(), test_types: checked("#key-form input[type=checkbox]") }),
    (created) => { $("key-created-secret").textContent = created.key; }, loadKeys);
  dismissOnce("key-created", ["key-created-secret"], "key-name");

  $("audit-refresh").addEventListener("click", () => loadAudit(false));
  $("audit-more").addEventListener("click", () => loadAudit(true));
  $("audit-json").addEventListener("click", () => auditDownload(false));
  $("audit-csv").addEventListener("click", () => auditDownload(true));
  $("stats-form").addEventListener("submit", (event) => { event.preventDefault(); loadStats(); });
  $("stats-csv").addEventListener("click", statsDownload);

  $("password-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = $("password-new").value;
    if (value !== $("password-again").value) { done("password-result", "The two passwords differ."); return; }
    try {
      await api("POST", "/v1/session/password", { current_password: $("password-current").value, new_password: value });
      for (const id of ["password-current", "password-new", "password-again"]) $(id).value = "";
      done("password-result", "Password changed. Your other sessions were signed out.");
    } catch (e) {
      done("password-result", "Refused: " + e.message);
    }
  });

  $("totp-begin").addEventListener("click", async () => {
    try {
      const enrolment = await (await api("POST", "/v1/session/totp")).json();
      $("totp-secret").textContent = enrolment.secret;
      $("totp-uri").textContent = enrolment.uri;
      show("totp-enrol", true);
      $("totp-result").textContent = "";
      focusOn("totp-code");
    } catch (e) {
      done("totp-result", "Refused: " + e.message);
    }
  });
  $("totp-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const recovery = await (await api("POST", "/v1/session/totp/confirm", { code: $("totp-code").value.trim() })).json();
      $("totp-code").value = "";
      $("totp-secret").textContent = "";
      $("totp-uri").textContent = "";
      show("totp-enrol", false);
      const list = $("totp-recovery");
      list.replaceChildren(...recovery.codes.map((code) => {
        const item = document.createElement("li");
        item.textContent = code;
        return item;
      }));
      show("totp-recovery-box", true);
      done("totp-result", "Authenticator app set up: sign-ins now need its code.");
      await resume();
      focusOn("totp-result");
    } catch (e) {
      done("totp-result", "Refused: " + e.message);
    }
  });
  $("totp-recovery-dismiss").addEventListener("click", () => {
    $("totp-recovery").replaceChildren();
    show("totp-recovery-box", false);
    focusOn("totp-begin");
  });

  const signOut = (path, message) => async () => {
    try {
      await api("DELETE", path);
    } catch (_) { /* the page signs out all the same */ }
    signedOut(message);
  };
  $("sign-out").addEventListener("click", signOut("/v1/session", "Signed out."));
  $("sign-out-everywhere").addEventListener("click",
    signOut("/v1/sessions", "Signed out everywhere: every session of your account ended."));

  resume();
});
