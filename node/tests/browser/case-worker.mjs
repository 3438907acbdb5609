// Drives the node's case-worker page in headless Debian Chromium with playwright-core.
// Usage: node case-worker.mjs <base-url> <name> <password> <screenshot.png>
// Every check that fails exits 1 with a line saying what was expected and what was seen.
import { chromium } from "playwright-core";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [base, name, password, shot] = process.argv.slice(2);
if (!base || !name || !password || !shot) {
  console.error("usage: node case-worker.mjs <base-url> <name> <password> <screenshot.png>");
  process.exit(2);
}
const CODE = /^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
let step = "start";
function check(ok, what, seen) {
  if (!ok) throw new Error(`${what} (seen: ${JSON.stringify(seen)})`);
  console.log(`ok - ${what}`);
}

const userData = fs.mkdtempSync(path.join(os.tmpdir(), "ephemera-chromium-"));
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "ephemera-csv-"));
const context = await chromium.launchPersistentContext(userData, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
  timeout: 60_000,
  acceptDownloads: true,
  viewport: { width: 900, height: 1000 },
});
let page;
let failed = false;
try {
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  step = "load the page";
  const response = await page.goto(`${base}/case-worker`);
  check(response.status() === 200, "GET /case-worker answers 200", response.status());
  check((response.headers()["content-security-policy"] || "").includes("default-src 'none'"),
    "the page has a strict Content-Security-Policy", response.headers()["content-security-policy"]);
  check(await page.isVisible("#sign-in-form"), "the sign-in form is visible", false);
  check(await page.isHidden("#issue"), "the issue section is hidden before sign-in", true);

  step = "wrong password";
  await page.fill("#sign-in-name", name);
  await page.fill("#sign-in-password", password + "-wrong");
  await page.click("#sign-in-submit");
  await page.waitForSelector("#sign-in-error", { state: "visible" });
  const signInError = await page.textContent("#sign-in-error");
  check(signInError.length > 0, "a wrong password shows a sign-in error", signInError);
  check(await page.isHidden("#issue"), "a wrong password does not sign in", false);

  step = "sign in";
  await page.fill("#sign-in-password", password);
  await page.click("#sign-in-submit");
  await page.waitForSelector("#new-password", { state: "visible" });
  check(await page.inputValue("#sign-in-password") === "", "the password field is cleared after sign-in", "non-empty");
  check(await page.isHidden("#sign-in"), "the sign-in section is hidden after sign-in", "visible");
  check(await page.isHidden("#issue"), "a one-time password leads to choosing a password, not issuing", "visible");

  step = "choose a password";
  check(await page.evaluate(() => document.activeElement.id) === "new-password-value",
    "the new-password field has the keyboard focus", await page.evaluate(() => document.activeElement.id));
  const label = await page.textContent("label[for=new-password-value]");
  check(label.trim() === "New password", "the new-password field is labelled", label);
  await page.keyboard.type("qwerty123456");
  await page.fill("#new-password-again", "qwerty123456");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#new-password-error", { state: "visible" });
  const weak = await page.textContent("#new-password-error");
  check(weak.includes("common password"), "a common password is refused with a reason", weak);
  const chosen = "a browser-tested passphrase";
  await page.fill("#new-password-value", chosen);
  await page.fill("#new-password-again", chosen);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#issue", { state: "visible" });
  check(await page.isHidden("#new-password"), "the password form is hidden once set", "visible");
  check(await page.inputValue("#new-password-value") === "", "the new-password field is cleared", "non-empty");

  step = "issue one code";
  await page.selectOption("#issue-test-type", "confirmed");
  await page.fill("#issue-onset", new Date(Date.now() - 3 * 86400_000).toISOString().slice(0, 10));
  await page.click("#issue-submit");
  await page.waitForSelector("#issued", { state: "visible" });
  const code = (await page.textContent("#issued-code")).trim();
  const expiry = (await page.textContent("#issued-expiry")).trim();
  check(CODE.test(code), "the issued code looks like XXXX-XXXX-XXXX-XXXX", code);
  check(RFC3339.test(expiry), "the expiry is shown as RFC 3339 UTC", expiry);
  const until = Date.parse(expiry);
  check(until > Date.now() && until < Date.now() + 7 * 86400_000, "the expiry is in the future and within a week", expiry);
  check(await page.getAttribute("#issued-expiry", "datetime") === expiry, "the <time> element carries the expiry", expiry);
  const reference = (await page.textContent("#issued-reference")).trim();
  check(/^[0-9A-HJKMNP-TV-Z]{12}$/.test(reference), "the code's reference is shown beside it", reference);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`ok - screenshot with the issued code written`);

  step = "dismiss the code";
  await page.click("#issued-dismiss");
  await page.waitForSelector("#issued", { state: "hidden" });
  const html = await page.content();
  check(!html.includes(code), "after 'Done' the code is gone from the page", "still in the DOM");
  const stored = await page.evaluate(() => JSON.stringify({ l: { ...localStorage }, s: { ...sessionStorage }, c: document.cookie }));
  check(!stored.includes(code) && stored === '{"l":{},"s":{},"c":""}', "nothing is kept in storage or cookies", stored);

  step = "issue a second code";
  await page.click("#issue-submit");
  await page.waitForSelector("#issued", { state: "visible" });
  const second = (await page.textContent("#issued-code")).trim();
  check(CODE.test(second) && second !== code, "a second issue shows a new, different code", second);
  await page.click("#issued-dismiss");

  step = "bulk issue as CSV";
  await page.fill("#bulk-count", "25");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#bulk-submit")]);
  check(download.suggestedFilename() === "upload-codes.csv", "the bulk issue downloads upload-codes.csv", download.suggestedFilename());
  const csvPath = path.join(scratch, "codes.csv");
  await download.saveAs(csvPath);
  const lines = fs.readFileSync(csvPath, "utf8").trim().split("\n");
  check(lines[0] === "code,expires_at,expires_at_utc,test_type,symptom_onset,reference", "the CSV has its header", lines[0]);
  check(lines.length === 26, "the CSV has 25 codes", lines.length - 1);
  const codes = lines.slice(1).map((l) => l.split(","));
  check(codes.every((f) => f.length === 6 && CODE.test(f[0]) && RFC3339.test(f[2]) && f[3] === "confirmed" && /^[0-9A-HJKMNP-TV-Z]{12}$/.test(f[5])),
    "every CSV row has a code, its expiry, the test type and a reference", lines[1]);
  check(new Set(codes.map((f) => f[0])).size === 25, "the 25 codes are distinct", codes.length);
  await page.waitForFunction(() => document.getElementById("bulk-status").textContent.includes("25 codes issued"));
  check(await page.isVisible("#bulk-download"), "a link to download the CSV again is shown", false);

  step = "screenshot";
  await page.screenshot({ path: shot.replace(/\.png$/, "-bulk.png"), fullPage: true });

  step = "sign out";
  await page.click("#sign-out");
  await page.waitForSelector("#sign-in", { state: "visible" });
  check(await page.isHidden("#issue"), "signing out hides the issue section", "visible");

  // The deliberate wrong password and common password above log a 401 and a 400; anything
  // else is a real error.
  const unexpected = consoleErrors.filter((m) => !m.includes("status of 401") && !m.includes("status of 400"));
  check(unexpected.length === 0, "no other console errors or CSP violations", unexpected);
} catch (e) {
  failed = true;
  console.error(`FAIL at step '${step}': ${e.message}`);
  if (page) await page.screenshot({ path: shot.replace(/\.png$/, "-failure.png"), fullPage: true }).catch(() => {});
} finally {
  await context.close();
  fs.rmSync(userData, { recursive: true, force: true });
  fs.rmSync(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
