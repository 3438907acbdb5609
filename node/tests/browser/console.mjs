// Drives the node's console in headless Debian Chromium with playwright-core, one browser
// context (own cookie jar) per account: the first admin signs in with the printed one-time
// password, sets its own, enrols TOTP, creates a case worker, a bulk issuer and an auditor,
// manages an API key; each of them signs in, sets a password and walks its path; the admin
// disables the auditor, whose open page then fails; the admin signs in again with TOTP.
// The case worker makes a venue: its QR code shows and its trace code downloads.
// Refusals: sections a role may not use are hidden AND the forbidden routes answer 403 to
// a fetch from that role's page; a missing, forged or other session's CSRF token answers
// its own error. One path is driven by the keyboard only; every input has an accessible name.
// Usage: node console.mjs <base-url> <name> <password> <artifacts-dir>
// Every check that fails exits 1 with a line saying what was expected and what was seen.
import { chromium } from "playwright-core";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [base, adminName, firstPassword, artifacts] = process.argv.slice(2);
if (!base || !adminName || !firstPassword || !artifacts) {
  console.error("usage: node console.mjs <base-url> <name> <password> <artifacts-dir>");
  process.exit(2);
}
const CODE = /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/;
const REFERENCE = /^[0-9A-HJKMNP-TV-Z]{12}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const started = Date.now();
let step = "start";
function check(ok, what, seen) {
  if (!ok) throw new Error(`${what} (seen: ${JSON.stringify(seen)})`);
  console.log(`ok - ${what}`);
}

// RFC 6238: HMAC-SHA-1 over the 30-second step, 6 digits; the secret is base32.
function totp(secret, stepOffset = 0) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of secret.replace(/=+$/, "").toUpperCase()) bits += alphabet.indexOf(c).toString(2).padStart(5, "0");
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30) + stepOffset));
  const mac = crypto.createHmac("sha1", key).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "ephemera-downloads-"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  timeout: 60_000,
});
const consoleErrors = [];
const pages = [];

async function open(who) {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1000, height: 1200 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(`${who}: ${m.text()}`); });
  page.on("pageerror", (e) => consoleErrors.push(`${who}: ${e}`));
  pages.push([who, page]);
  const response = await page.goto(`${base}/console`);
  check(response.status() === 200, `${who}: GET /console answers 200`, response.status());
  await page.waitForSelector("#sign-in", { state: "visible" });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `console-${name}.png`), fullPage: true });
}

async function signIn(page, name, password) {
  await page.fill("#sign-in-name", name);
  await page.fill("#sign-in-password", password);
  await page.click("#sign-in-submit");
}

async function choosePassword(page, who, chosen) {
  await page.waitForSelector("#new-password", { state: "visible" });
  await page.fill("#new-password-value", chosen);
  await page.fill("#new-password-again", chosen);
  await page.click("#new-password-submit");
  await page.waitForSelector("#console", { state: "visible" });
  check(await page.isHidden("#new-password"), `${who}: the password form is gone once a password is set`, "visible");
}

// A fetch from the page's own script context with its cookie, and a chosen CSRF header
// (`undefined`: the page's own token; `null`: none).
async function fetchFrom(page, method, url, csrf, body) {
  return page.evaluate(async ([method, url, csrf, body]) => {
    const headers = {};
    // The console's script holds its CSRF token in the top-level binding `csrf`.
    const token = csrf === undefined ? globalThis.eval("csrf") : csrf;
    if (token !== null) headers["X-CSRF-Token"] = token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    let error = "";
    try { error = (await r.json()).error || ""; } catch (_) { /* not JSON */ }
    return { status: r.status, error };
  }, [method, url, csrf === undefined ? undefined : csrf, body]);
}

async function expectRefused(page, who, method, url, status, error, csrf, body) {
  const r = await fetchFrom(page, method, url, csrf, body);
  check(r.status === status && r.error === error, `${who}: ${method} ${url} answers ${status} ${error}`, r);
}

async function visibleSections(page) {
  return page.evaluate(() => [...document.querySelectorAll("section[data-roles]")]
    .filter((s) => !s.hidden).map((s) => s.id).sort().join(","));
}

async function csrfOf(page) { return page.evaluate(() => globalThis.eval("csrf")); }

async function download(page, button) {
  const [file] = await Promise.all([page.waitForEvent("download"), page.click(button)]);
  const saved = path.join(scratch, file.suggestedFilename());
  await file.saveAs(saved);
  return [file.suggestedFilename(), fs.readFileSync(saved, "utf8")];
}

// Every form control has a name a screen reader announces (the accessibility tree's own).
async function everyInputNamed(page, who) {
  const snapshot = await page.locator("main").ariaSnapshot();
  const nameless = snapshot.split("\n").map((l) => l.trim())
    .filter((l) => /^- (textbox|combobox|checkbox|spinbutton|button)(?! ")/.test(l));
  const controls = snapshot.split("\n").filter((l) => /(textbox|combobox|checkbox|spinbutton) "/.test(l)).length;
  check(controls > 0 && nameless.length === 0, `${who}: every visible input (${controls}) has an accessible name`, nameless);
}

let failed = false;
try {
  step = "admin: first sign-in";
  const admin = await open("admin");
  check(await page0Csp(admin), "the console has a strict Content-Security-Policy", "");
  check(await admin.evaluate(() => document.activeElement.id) === "sign-in-name", "the name field has the focus at load",
    await admin.evaluate(() => document.activeElement.id));
  check((await visibleSections(admin)) === "" && await admin.isHidden("#console"), "nothing but sign-in is shown before sign-in", await visibleSections(admin));
  await signIn(admin, adminName, firstPassword + "-wrong");
  await admin.waitForSelector("#sign-in-error", { state: "visible" });
  check((await admin.textContent("#sign-in-error")).length > 0, "a wrong password shows an error", "");
  check(await admin.evaluate(() => document.activeElement.id) === "sign-in-error", "the error takes the focus", "");
  await signIn(admin, adminName, firstPassword);
  await admin.waitForSelector("#new-password", { state: "visible" });
  check(await admin.inputValue("#sign-in-password") === "", "the password field is cleared after sign-in", "non-empty");
  const cookies = await admin.context().cookies();
  const session = cookies.find((c) => c.name === "__Host-ephemera-session");
  check(session && session.httpOnly && session.secure && session.sameSite === "Strict" && session.path === "/",
    "the session is an HttpOnly, Secure, SameSite=Strict __Host- cookie", cookies);
  const stored = await admin.evaluate(() => JSON.stringify({ l: { ...localStorage }, s: { ...sessionStorage }, c: document.cookie }));
  check(stored === '{"l":{},"s":{},"c":""}', "the page's script sees no session token (nothing in storage or document.cookie)", stored);
  check(!(await admin.content()).includes(session.value), "the session token is nowhere in the page", "found");
  await admin.fill("#new-password-value", "qwerty123456");
  await admin.fill("#new-password-again", "qwerty123456");
  await admin.click("#new-password-submit");
  await admin.waitForSelector("#new-password-error", { state: "visible" });
  check((await admin.textContent("#new-password-error")).includes("common password"), "a common password is refused with a reason", "");
  const adminPassword = "admin console passphrase";
  await choosePassword(admin, "admin", adminPassword);
  check((await visibleSections(admin)) === "accounts,api-keys,audit,bulk,code-status,issue,stats,venue,venue-trace",
    "the first admin (every role) sees every section", await visibleSections(admin));
  await everyInputNamed(admin, "admin");

  step = "admin: reload resumes the session";
  await admin.reload();
  await admin.waitForSelector("#console", { state: "visible" });
  check((await admin.textContent("#whoami")).includes(adminName), "a reload with a live cookie resumes the session", await admin.textContent("#whoami"));

  step = "admin: enrol TOTP";
  await admin.click("#totp-begin");
  await admin.waitForSelector("#totp-enrol", { state: "visible" });
  const secret = (await admin.textContent("#totp-secret")).trim();
  const uri = (await admin.textContent("#totp-uri")).trim();
  check(/^[A-Z2-7]{32}$/.test(secret) && uri.startsWith("otpauth://totp/") && uri.includes(secret),
    "the TOTP secret and otpauth URI are shown as text", { secret, uri });
  await admin.fill("#totp-code", totp(secret));
  await admin.click("#totp-submit");
  await admin.waitForSelector("#totp-recovery-box", { state: "visible" });
  const recovery = await admin.$$eval("#totp-recovery li", (items) => items.map((i) => i.textContent));
  check(recovery.length === 10 && recovery.every((c) => CODE.test(c)), "ten recovery codes are shown once", recovery);
  await admin.click("#totp-recovery-dismiss");
  check(!(await admin.content()).includes(recovery[0]) && !(await admin.content()).includes(secret),
    "the recovery codes and the secret leave the page", "still there");

  step = "admin: create accounts";
  const oneTime = {};
  for (const [name, role] of [["cw", "case-worker"], ["bulk", "bulk-issuer"], ["aud", "auditor"]]) {
    await admin.fill("#account-name", name);
    await admin.check(`#account-role-${role}`);
    await admin.click("#account-submit");
    await admin.waitForSelector("#account-created", { state: "visible" });
    await admin.waitForFunction((n) => document.getElementById("account-created-name").textContent === n, name);
    oneTime[name] = (await admin.textContent("#account-created-password")).trim();
    check(oneTime[name].length >= 20, `the one-time password of ${name} is shown once`, oneTime[name].length);
    await admin.click("#account-created-dismiss");
    check(!(await admin.content()).includes(oneTime[name]), `${name}'s one-time password leaves the page`, "still there");
  }
  await admin.waitForSelector('[id="account-aud-disable"]');
  const rows = await admin.$$eval("#accounts-table tbody tr", (trs) => trs.map((t) => t.cells[0].textContent + ":" + t.cells[1].textContent));
  check(rows.includes("cw:case-worker") && rows.includes("bulk:bulk-issuer") && rows.includes("aud:auditor"), "the accounts table lists them with roles", rows);
  await admin.fill("#account-name", "again");
  await admin.click("#account-submit");
  await admin.waitForSelector("#account-error", { state: "visible" });
  check((await admin.textContent("#account-error")).includes("role"), "an account without roles is refused with a reason", await admin.textContent("#account-error"));

  step = "admin: API keys";
  await admin.fill("#key-name", "lab-1");
  await admin.check("#key-type-confirmed");
  await admin.click("#key-submit");
  await admin.waitForSelector("#key-created", { state: "visible" });
  const key = (await admin.textContent("#key-created-secret")).trim();
  check(/^ephk_[0-9a-f]{16}_[0-9a-f]{64}$/.test(key), "a new API key is shown once", key.slice(0, 5));
  const keyId = key.split("_")[1];
  await admin.click("#key-created-dismiss");
  check(!(await admin.content()).includes(key), "the key leaves the page", "still there");
  await admin.click(`[id="key-${keyId}-revoke"]`);
  await admin.waitForFunction(() => document.getElementById("keys-result").textContent.includes("revoked"));
  const keyRow = await admin.$eval("#keys-table tbody tr", (t) => t.textContent);
  check(keyRow.includes("lab-1") && keyRow.includes("confirmed") && keyRow.includes("revoked"), "the revoked key is listed as revoked", keyRow);
  await shot(admin, "admin");

  step = "case worker: keyboard only";
  const cw = await open("case-worker");
  check(await cw.evaluate(() => document.activeElement.id) === "sign-in-name", "the case worker starts in the name field", "");
  await cw.keyboard.type("cw");
  await cw.keyboard.press("Tab");
  await cw.keyboard.type(oneTime.cw);
  await cw.keyboard.press("Enter");
  await cw.waitForSelector("#new-password", { state: "visible" });
  check(await cw.evaluate(() => document.activeElement.id) === "new-password-value", "the focus moves to the new password", "");
  await cw.keyboard.type("case worker passphrase");
  await cw.keyboard.press("Tab");
  await cw.keyboard.type("case worker passphrase");
  await cw.keyboard.press("Enter");
  await cw.waitForSelector("#console", { state: "visible" });
  async function tabTo(page, id) {
    // Enough presses to go once around the whole page (the venue forms added about 30 stops:
    // Chromium tabs through each part of a datetime-local field).
    for (let i = 0; i < 80; i++) {
      if (await page.evaluate(() => document.activeElement.id) === id) return;
      await page.keyboard.press("Tab");
    }
    throw new Error(`Tab never reached #${id}`);
  }
  await tabTo(cw, "issue-submit");
  await cw.keyboard.press("Enter");
  await cw.waitForSelector("#issued", { state: "visible" });
  check(await cw.evaluate(() => document.activeElement.id) === "issued", "the issued code takes the focus", "");
  const code = (await cw.textContent("#issued-code")).trim();
  const expiry = (await cw.textContent("#issued-expiry")).trim();
  const reference = (await cw.textContent("#issued-reference")).trim();
  check(CODE.test(code) && RFC3339.test(expiry) && REFERENCE.test(reference), "a code is issued by keyboard, with expiry and reference", { expiry, reference });
  await tabTo(cw, "status-submit");
  await cw.keyboard.press("Enter");
  await cw.waitForFunction(() => document.getElementById("status-result").textContent.includes("issued"));
  check((await cw.textContent("#status-result")).includes(reference), "the status by reference says issued", await cw.textContent("#status-result"));
  await tabTo(cw, "status-revoke");
  await cw.keyboard.press("Enter");
  await cw.waitForFunction(() => document.getElementById("status-result").textContent.includes("revoked"));
  check(await cw.evaluate(() => document.activeElement.id) === "status-result", "the revoke's result takes the focus", "");
  await tabTo(cw, "issued-dismiss");
  await cw.keyboard.press("Enter");
  check(!(await cw.content()).includes(code), "the dismissed code leaves the page", "still there");
  check((await visibleSections(cw)) === "code-status,issue,venue,venue-trace", "a case worker sees issue, status and venues only", await visibleSections(cw));
  await everyInputNamed(cw, "case worker");
  await shot(cw, "case-worker");

  step = "case worker: a venue";
  // Made through the page: the QR code shows (the node's SVG from a blob: URL, loaded
  // under the page's CSP), the trace code downloads, and both leave the page when dismissed.
  await cw.fill("#venue-description", "Browser Cafe");
  await cw.fill("#venue-address", "Test Street 1");
  await cw.click("#venue-submit");
  await cw.waitForSelector("#venue-made", { state: "visible" });
  await cw.waitForFunction(() => { const img = document.getElementById("venue-qr"); return img.complete && img.naturalWidth > 0; });
  check((await cw.getAttribute("#venue-qr", "src")).startsWith("blob:"), "the venue's QR code is shown from memory", await cw.getAttribute("#venue-qr", "src"));
  await shot(cw, "venue");
  const qrText = (await cw.textContent("#venue-qr-text")).trim();
  check(/^ephemera-venue:[A-Za-z0-9_-]+$/.test(qrText), "the QR text is shown", qrText.slice(0, 30));
  const [traceName, traceCode] = await download(cw, "#venue-trace-download");
  check(traceName === "trace-code.txt" && /^ephemera-trace:[A-Za-z0-9_-]+\n$/.test(traceCode), "the trace code downloads as trace-code.txt", traceName);
  const [qrName, qrSvg] = await download(cw, "#venue-qr-download");
  check(qrName === "entry-qr.svg" && qrSvg.includes("<svg"), "the QR code downloads as SVG", qrName);
  await cw.click("#venue-made-dismiss");
  check(await cw.isHidden("#venue-made") && !(await cw.content()).includes(traceCode.trim().slice(15, 60)), "the dismissed venue leaves the page", "still there");
  await cw.fill("#venue-description", "x".repeat(60) + "é".repeat(30));
  await cw.click("#venue-submit");
  await cw.waitForSelector("#venue-error", { state: "visible" });
  check((await cw.textContent("#venue-error")).includes("100 bytes"), "a name over 100 bytes is refused with a reason", await cw.textContent("#venue-error"));
  await cw.fill("#venue-description", "");

  step = "case worker: a venue trace";
  // The venue hands its trace-code.txt over; the case worker loads it, enters the case's
  // hours (UTC) and warns the visitors: the release is published and the code leaves the page.
  const hour = (ago) => new Date(Date.now() - ago * 3600e3).toISOString().slice(0, 13) + ":00";
  await cw.setInputFiles("#venue-trace-file", { name: "trace-code.txt", mimeType: "text/plain", buffer: Buffer.from(traceCode) });
  await cw.waitForFunction(() => document.getElementById("venue-trace-code").value.startsWith("ephemera-trace:"));
  check((await cw.inputValue("#venue-trace-code")) === traceCode.trim(), "the venue's trace-code.txt loads into the form", "");
  await cw.fill("#venue-trace-from", hour(3));
  await cw.fill("#venue-trace-until", hour(5));
  await cw.click("#venue-trace-submit");
  await cw.waitForSelector("#venue-trace-error", { state: "visible" });
  check((await cw.textContent("#venue-trace-error")).includes("end before they start"), "inverted times are refused with a reason", await cw.textContent("#venue-trace-error"));
  await cw.fill("#venue-trace-until", hour(2));
  await cw.click("#venue-trace-submit");
  await cw.waitForFunction(() => document.getElementById("venue-trace-done").textContent.includes("release"));
  const release = (await cw.textContent("#venue-trace-done")).match(/release ([0-9a-f]{64})/);
  check(release !== null, "the trace is published as a release", await cw.textContent("#venue-trace-done"));
  await shot(cw, "venue-trace");
  const listed = await cw.evaluate(async () => (await (await fetch("/v1/venue-releases")).json()).releases.map((r) => r.id));
  check(listed.includes(release[1]), "phones find the release in the index", listed);
  check(await cw.isHidden("#venue-trace-error") && (await cw.inputValue("#venue-trace-code")) === "" && !(await cw.content()).includes(traceCode.trim().slice(15, 60)),
    "the trace code leaves the page once sent", "still there");

  step = "case worker: refusals";
  await expectRefused(cw, "case worker", "GET", "/v1/accounts", 403, "forbidden");
  await expectRefused(cw, "case worker", "GET", "/v1/audit", 403, "forbidden");
  await expectRefused(cw, "case worker", "GET", "/v1/stats", 403, "forbidden");
  await expectRefused(cw, "case worker", "GET", "/v1/stats/chart.svg", 403, "forbidden");
  await expectRefused(cw, "case worker", "GET", "/v1/api-keys", 403, "forbidden");
  await expectRefused(cw, "case worker", "POST", "/v1/codes", 403, "forbidden", undefined, { test_type: "confirmed", count: 5 });
  await expectRefused(cw, "case worker", "GET", "/v1/session", 403, "csrf-missing", null);
  await expectRefused(cw, "case worker", "GET", "/v1/session", 403, "csrf-invalid", "00".repeat(32));
  await expectRefused(cw, "case worker", "GET", "/v1/session", 403, "csrf-session-mismatch", await csrfOf(admin));
  await expectRefused(cw, "case worker", "POST", "/v1/codes", 403, "csrf-missing", null, { test_type: "confirmed" });

  step = "bulk issuer";
  const bulk = await open("bulk-issuer");
  await signIn(bulk, "bulk", oneTime.bulk);
  await choosePassword(bulk, "bulk issuer", "mass issue passphrase");
  check((await visibleSections(bulk)) === "bulk,code-status", "a bulk issuer sees bulk and status only", await visibleSections(bulk));
  await bulk.fill("#bulk-count", "25");
  const [csvName, csv] = await download(bulk, "#bulk-submit");
  const lines = csv.trim().split("\n");
  check(csvName === "upload-codes.csv" && lines[0] === "code,expires_at,expires_at_utc,test_type,symptom_onset,reference" && lines.length === 26,
    "the bulk issue downloads 25 codes as upload-codes.csv", { csvName, header: lines[0], rows: lines.length - 1 });
  const fields = lines.slice(1).map((l) => l.split(","));
  check(fields.every((f) => CODE.test(f[0]) && f[3] === "confirmed" && REFERENCE.test(f[5])) && new Set(fields.map((f) => f[0])).size === 25,
    "every row has a distinct code, its type and a reference", lines[1].slice(19));
  await bulk.waitForFunction(() => document.getElementById("bulk-status").textContent.includes("25 codes issued"));
  await expectRefused(bulk, "bulk issuer", "GET", "/v1/api-keys", 403, "forbidden");
  await expectRefused(bulk, "bulk issuer", "POST", "/v1/venues", 403, "forbidden", undefined, { description: "Bar" });
  await expectRefused(bulk, "bulk issuer", "POST", "/v1/venue-traces", 403, "forbidden", undefined, { trace_code: "x", case_from: 0, case_until: 0, message: "" });
  await expectRefused(bulk, "bulk issuer", "POST", "/v1/accounts", 403, "forbidden", undefined, { name: "x", roles: ["admin"] });
  await shot(bulk, "bulk-issuer");
  await bulk.click("#sign-out-everywhere");
  await bulk.waitForSelector("#sign-in", { state: "visible" });
  check((await bulk.textContent("#console-status")).includes("everywhere"), "sign out everywhere says so", await bulk.textContent("#console-status"));
  check(!(await bulk.context().cookies()).some((c) => c.name === "__Host-ephemera-session"), "signing out clears the cookie", "still set");

  step = "auditor";
  const aud = await open("auditor");
  await signIn(aud, "aud", oneTime.aud);
  await choosePassword(aud, "auditor", "log reader passphrase one");
  check((await visibleSections(aud)) === "audit,stats", "an auditor sees the audit log and the statistics only", await visibleSections(aud));
  // Statistics: the codes the case worker and the bulk issuer issued today, as a table and
  // as the chart the node draws (fetched with the CSRF token, shown from memory).
  await aud.waitForFunction(() => document.querySelectorAll("#stats-table tbody tr").length > 0 && document.querySelector("#stats-chart").complete && document.querySelector("#stats-chart").naturalWidth > 0);
  const statsHead = await aud.$$eval("#stats-table thead th", (ths) => ths.map((t) => t.textContent).join(","));
  check(statsHead === "Day (UTC),confirmed,likely,negative", "the statistics table has a column per test type", statsHead);
  const today = new Date().toISOString().slice(0, 10);
  const todayRow = await aud.$$eval("#stats-table tbody tr", (trs, day) => trs.filter((t) => t.cells[0].textContent === day).map((t) => [...t.cells].slice(1).map((c) => c.textContent).join(",")), today);
  check(todayRow.length === 1 && /^\d+,/.test(todayRow[0]) && Number(todayRow[0].split(",")[0]) >= 25, "today's confirmed codes are counted (25 bulk and more)", todayRow);
  const chartAlt = await aud.getAttribute("#stats-chart", "alt");
  check((await aud.getAttribute("#stats-chart", "src")).startsWith("blob:") && chartAlt.startsWith("Codes issued per day"), "the node's chart is shown with a text alternative", chartAlt);
  check((await aud.textContent("#stats-note")).includes("shown as <5"), "the page says small counts are shown as <5", await aud.textContent("#stats-note"));
  await aud.selectOption("#stats-metric", "codes_revoked");
  await aud.click("#stats-submit");
  await aud.waitForFunction(() => document.querySelector("#stats-caption").textContent.startsWith("Codes revoked"));
  const revokedRow = await aud.$$eval("#stats-table tbody tr", (trs, day) => trs.filter((t) => t.cells[0].textContent === day).map((t) => t.cells[1].textContent), today);
  check(revokedRow[0] === "<5", "one code revoked today shows as <5, never its value", revokedRow);
  const [statsName, statsCsv] = await download(aud, "#stats-csv");
  check(statsName === "statistics.csv" && statsCsv.startsWith("day,metric,test_type,count") && statsCsv.includes(",codes_revoked,confirmed,<5"), "the statistics download as CSV", statsCsv.slice(0, 80));
  await aud.waitForFunction(() => document.querySelectorAll("#audit-table tbody tr").length > 0);
  check((await aud.textContent("#audit-verified")).startsWith("The trail verifies"), "the audit log shows that it verifies", await aud.textContent("#audit-verified"));
  const actors = await aud.$$eval("#audit-table tbody tr", (trs) => trs.map((t) => t.cells[2].textContent + " " + t.cells[3].textContent));
  check(actors.some((a) => a.startsWith("account:cw ")) && actors.some((a) => a.includes("revoke")), "the log shows the case worker's sign-in and revoke", actors.slice(-5));
  const auditText = await aud.textContent("#audit-table");
  check(!auditText.includes(code) && !auditText.includes(key), "the log holds no code and no key", "found");

  const [jsonName, json] = await download(aud, "#audit-json");
  const exported = JSON.parse(json);
  check(jsonName === "audit.json" && exported.verified === true && exported.records.length > 10, "the log downloads as JSON", { jsonName, n: exported.records.length });
  check(exported.records.some((r) => r.actor === "account:cw" && r.action === "venue-created") && !json.includes("Browser Cafe") && !json.includes(qrText.slice(15, 60)),
    "the log says the case worker made a venue, and nothing of it", exported.records.filter((r) => r.action.includes("venue")));
  check(exported.records.some((r) => r.actor === "account:cw" && r.action.startsWith("venue-traced") && json.includes(release[1])) && !json.includes(traceCode.trim().slice(15, 60)),
    "the log says the case worker traced a venue, by release, and holds no trace code", exported.records.filter((r) => r.action.includes("venue")));
  const [csvAuditName, csvAudit] = await download(aud, "#audit-csv");
  check(csvAuditName === "audit.csv" && csvAudit.startsWith("sequence,minute_utc,actor,action,outcome,previous,hash"), "the log downloads as CSV", csvAudit.slice(0, 60));
  await aud.fill("#password-current", "log reader passphrase one");
  await aud.fill("#password-new", "log reader passphrase two");
  await aud.fill("#password-again", "log reader passphrase two");
  await aud.click("#password-submit");
  await aud.waitForFunction(() => document.getElementById("password-result").textContent.includes("changed"));
  check(true, "the auditor changes the password from the account section", "");
  await expectRefused(aud, "auditor", "POST", "/v1/codes", 403, "forbidden", undefined, { test_type: "confirmed" });
  await expectRefused(aud, "auditor", "GET", "/v1/accounts", 403, "forbidden");
  await expectRefused(aud, "auditor", "POST", "/v1/venues", 403, "forbidden", undefined, { description: "Bar" });
  await expectRefused(aud, "auditor", "POST", "/v1/venue-traces", 403, "forbidden", undefined, { trace_code: "x", case_from: 0, case_until: 0, message: "" });
  await everyInputNamed(aud, "auditor");
  await shot(aud, "auditor");

  step = "admin disables the auditor";
  const audCsrf = await csrfOf(aud);
  await admin.click('[id="account-aud-disable"]');
  await admin.waitForSelector('[id="account-aud-enable"]');
  await expectRefused(aud, "disabled auditor", "GET", "/v1/audit", 401, "session-ended", audCsrf);
  await aud.click("#audit-refresh");
  await aud.waitForSelector("#sign-in", { state: "visible" });
  check((await aud.textContent("#console-status")).includes("ended"), "the disabled account's page is signed out with a reason", await aud.textContent("#console-status"));

  step = "case worker signs out";
  const cwCsrf = await csrfOf(cw);
  await cw.click("#sign-out");
  await cw.waitForSelector("#sign-in", { state: "visible" });
  check(await cw.isHidden("#console"), "signing out hides the console", "visible");
  check(!(await cw.context().cookies()).some((c) => c.name === "__Host-ephemera-session"), "signing out clears the cookie", "still set");
  await expectRefused(cw, "signed-out case worker", "GET", "/v1/session", 401, "unauthorized", cwCsrf);

  step = "admin signs in again with TOTP";
  await admin.click("#sign-out");
  await admin.waitForSelector("#sign-in", { state: "visible" });
  const admin2 = await open("admin again");
  await signIn(admin2, adminName, adminPassword);
  await admin2.waitForSelector("#sign-in-second", { state: "visible" });
  check(await admin2.evaluate(() => document.activeElement.id) === "sign-in-totp", "a TOTP account is asked for its code, focused", "");
  await admin2.fill("#sign-in-password", adminPassword);
  await admin2.fill("#sign-in-totp", totp(secret, 1));
  await admin2.click("#sign-in-submit");
  await admin2.waitForSelector("#console", { state: "visible" });
  check((await admin2.textContent("#whoami")).includes(adminName), "the admin signs in with TOTP", await admin2.textContent("#whoami"));
  step = "admin manages accounts: roles, reset, enable";
  await admin2.waitForSelector('[id="account-bulk-roles"]');
  await admin2.fill('[id="account-bulk-roles"]', "bulk-issuer, case-worker");
  await admin2.click('[id="account-bulk-roles-set"]');
  await admin2.waitForFunction(() => document.getElementById("accounts-result").textContent.includes("Roles of bulk set"));
  const bulkRow = await admin2.$$eval("#accounts-table tbody tr", (trs) => trs.find((t) => t.cells[0].textContent === "bulk").cells[1].textContent);
  check(bulkRow === "case-worker, bulk-issuer" || bulkRow === "bulk-issuer, case-worker", "the admin grants a role from the table", bulkRow);
  await admin2.fill('[id="account-cw-roles"]', "case-worker, no-such-role");
  await admin2.click('[id="account-cw-roles-set"]');
  await admin2.waitForFunction(() => document.getElementById("accounts-result").textContent.startsWith("Refused"));
  check((await admin2.textContent("#accounts-result")).includes("unknown role"), "an unknown role is refused with a reason", await admin2.textContent("#accounts-result"));
  await admin2.click('[id="account-cw-reset"]');
  await admin2.waitForSelector("#account-created", { state: "visible" });
  const reset = (await admin2.textContent("#account-created-password")).trim();
  check(reset.length >= 20 && reset !== oneTime.cw, "a password reset shows a new one-time password once", reset.length);
  await admin2.click("#account-created-dismiss");
  await admin2.click('[id="account-aud-enable"]');
  await admin2.waitForSelector('[id="account-aud-disable"]');
  check(true, "the admin enables the auditor again", "");
  await shot(admin2, "admin-totp");
  await admin2.click("#sign-out");
  await admin2.waitForSelector("#sign-in", { state: "visible" });

  // Deliberate refusals log their status; anything else is a real error.
  const unexpected = consoleErrors.filter((m) => !/status of (400|401|403)/.test(m));
  check(unexpected.length === 0, "no other console errors or CSP violations", unexpected);
  console.log(`browser test took ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  failed = true;
  console.error(`FAIL at step '${step}': ${e.message}`);
  for (const [who, page] of pages) {
    await page.screenshot({ path: path.join(artifacts, `console-failure-${who.replace(/ /g, "-")}.png`), fullPage: true }).catch(() => {});
  }
} finally {
  await browser.close();
  fs.rmSync(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);

async function page0Csp(page) {
  const response = await page.request.get(`${base}/console`);
  return (response.headers()["content-security-policy"] || "").includes("default-src 'none'");
}
