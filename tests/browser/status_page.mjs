// Drives the admin listener's status page in headless Chromium
// (tests/status_page.rs runs it against a live ktcpvsd):
//
//   node status_page.mjs URL EXPECT.json SCREENSHOT.png
//
// EXPECT names the services, rules and servers the page must show, the
// server the test will take down, the poll interval, and (with actions
// on) the token and the weight to set from the page. The script prints
// progress lines; "READY-FOR-DOWN" asks the test to stop the server and
// answer "go" on stdin. It prints "OK" and exits 0 when every check
// passed, "FAIL: why" and exits 1 otherwise; it gives up after a minute.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, expectPath, shot] = process.argv.slice(2);
const expect = JSON.parse(readFileSync(expectPath, "utf8"));
const executablePath = process.env.KTCPVS_CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "ktcpvs-chromium-"));
const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once("line", resolve));
let browser;

function fail(why) {
  throw new Error(why);
}

async function until(what, probe, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) fail(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  browser = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = browser.pages()[0] || (await browser.newPage());
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push("console: " + m.text()); });
  page.on("pageerror", (e) => errors.push("page error: " + e.message));
  page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
  await page.goto(url + "?interval=" + expect.interval, { timeout: 10000 });
  await page.waitForSelector("body[data-polls='2'], body[data-polls='3'], body[data-polls='4']", { timeout: 10000 });

  // Every service, rule and server of the configuration.
  for (const s of expect.services) {
    const card = page.locator(`section[data-service="${s.name}"]`);
    if ((await card.count()) !== 1) fail(`service ${s.name} not shown`);
    for (const [i, pattern] of s.rules.entries()) {
      const text = await card.locator(`tr[data-rule="${i}"]`).innerText();
      if (!text.includes(pattern)) fail(`rule ${i} of ${s.name}: ${JSON.stringify(text)} lacks ${pattern}`);
    }
    for (const server of s.servers) {
      if ((await card.locator(`tr[data-server="${server}"]`).count()) !== 1) fail(`server ${server} of ${s.name} not shown`);
    }
    console.log(`shown: service ${s.name}, ${s.rules.length} rules, ${s.servers.length} servers`);
  }
  const svc = expect.services[0].name;
  const card = page.locator(`section[data-service="${svc}"]`);
  const hash = await page.locator("#config-hash").innerText();
  if (hash !== expect.config_hash) fail(`configuration hash ${hash}, tcpvsadm says ${expect.config_hash}`);

  // The figures move with the traffic.
  const total = async () => Number(await card.locator('.figures [data-f="total"]').innerText());
  const before = await total();
  await until("the request count to grow", async () => (await total()) > before, 5000);
  const rps = await until("a request rate above 0", async () => {
    const v = Number(await card.locator('.figures [data-f="rps"]').innerText());
    return v > 0 ? v : 0;
  }, 5000);
  const hits = await card.locator('tr[data-rule="0"] [data-f="hits"]').innerText();
  console.log(`figures: requests ${before} -> ${await total()}, ${rps} req/s, rule 0 hits ${hits}`);

  // A server taken down is shown down within one refresh of /stats saying so.
  const row = card.locator(`tr[data-server="${expect.down}"]`);
  console.log("READY-FOR-DOWN");
  await nextLine();
  const statsDown = await until("/stats to say the server is down", () => page.evaluate(async ([s, a]) => {
    const st = await (await fetch("stats", { cache: "no-store" })).json();
    const r = st.services.find((x) => x.name === s).servers.find((x) => x.address === a);
    return r.state === "down" ? Date.now() : 0;
  }, [svc, expect.down]), 10000);
  const shownAt = await until("the page to show the server down", async () =>
    (await row.locator('[data-f="state"]').innerText()).includes("down") ? Date.now() : 0, 3 * expect.interval);
  const lag = Math.max(0, shownAt - statsDown);
  if (lag > expect.interval + 300) fail(`shown down ${lag} ms after /stats said so (interval ${expect.interval} ms)`);
  console.log(`down: shown ${lag} ms after /stats said so: ${await row.locator('[data-f="state"]').innerText()}, ${await row.locator('[data-f="reason"]').innerText()}`);

  // An action from the page, with the operator's token.
  if (expect.token) {
    await page.fill("#token", expect.token);
    await page.press("#token", "Enter");
    const target = card.locator(`tr[data-server="${expect.weight.server}"]`);
    await target.locator('[data-f="weight-input"]').fill(String(expect.weight.weight));
    await target.locator('[data-f="weight-input"]').press("Enter");
    await until("the action to be done", async () => (await page.locator("#notice").innerText()).includes("done"), 5000);
    await until("the new weight to show", async () =>
      (await target.locator('[data-f="weight"]').innerText()) === String(expect.weight.weight), 3 * expect.interval);
    await until("the action in the log", async () => (await page.locator("#log").innerText()).includes("weight=" + expect.weight.weight), 3 * expect.interval);
    console.log(`WEIGHT-SET ${expect.weight.server} ${expect.weight.weight}`);
  }

  await page.waitForTimeout(2 * expect.interval); // a few chart points more
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);

  // A phone's screen: the page itself does not scroll sideways.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(expect.interval + 200);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  if (overflow > 1) {
    const wide = await page.evaluate(() => [...document.querySelectorAll("body *")]
      .filter((e) => !e.closest(".scroll") && e.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(0, 5).map((e) => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().left) + "+" + Math.round(e.getBoundingClientRect().width)));
    fail(`on a 390 px screen the page is ${overflow} px too wide: ${wide.join(", ")}`);
  }
  // The keyboard reaches the controls.
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
  if (!focused) fail("Tab focuses nothing");
  if (errors.length) fail("browser errors:\n" + errors.join("\n"));
  console.log("console: no error");
}

const guard = setTimeout(() => { console.log("FAIL: timed out"); process.exit(1); }, 60000);
try {
  await main();
  console.log("OK");
  process.exitCode = 0;
} catch (e) {
  console.log("FAIL: " + (e && e.message ? e.message : e));
  process.exitCode = 1;
} finally {
  clearTimeout(guard);
  lines.close();
  if (browser) await browser.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
