// Browser test of the dashboard against a running `canopy demo` (started by
// tests/browser/run.sh). Drives Debian's Chromium with playwright-core:
// loads the overview, changes the time range, drills into a team and a
// resource, exports a CSV, and checks that the numbers on screen equal the
// API's answers for the same requests. Screenshots go to $SCREENSHOT_DIR.
//
// Usage: node dashboard.test.mjs http://127.0.0.1:PORT/
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const base = process.argv[2];
assert.ok(base, "expected the dashboard URL as the first argument, found none");
const shots = process.env.SCREENSHOT_DIR || join(tmpdir(), "canopy-browser-screenshots");
mkdirSync(shots, { recursive: true });
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

/** The API's own answer to the request the page made (same path and query). */
async function apiAnswer(pageRequestUrl) {
  const u = new URL(pageRequestUrl);
  const resp = await fetch(new URL(`${u.pathname}${u.search}`, base));
  assert.equal(resp.status, 200, `${u.pathname}${u.search} answered ${resp.status}`);
  return resp.json();
}

/** Waits for the page's next answer from `path` (optionally with a query test). */
function nextResponse(page, path, test = () => true) {
  return page.waitForResponse((r) => {
    const u = new URL(r.url());
    return u.pathname === path && test(u.searchParams) && r.status() === 200;
  });
}

/** Raw numbers of column `col` (0-based) of the table in `selector`. */
async function columnValues(page, selector, col) {
  return page.$$eval(`${selector} tbody tr`, (trs, c) => trs.map((tr) => tr.cells[c].dataset.value ?? tr.cells[c].textContent), col);
}

async function firstColumn(page, selector) {
  return page.$$eval(`${selector} tbody tr`, (trs) => trs.map((tr) => tr.cells[0].textContent));
}

async function panelsLoaded(page, names) {
  await page.waitForFunction((ids) => ids.every((id) => {
    const s = document.getElementById(`${id}-status`);
    return s && !s.textContent.startsWith("Loading");
  }), names);
  for (const n of names) {
    const text = await page.textContent(`#${n}-status`);
    assert.ok(!text.startsWith("Could not load"), `${n} panel: ${text}`);
  }
}

const close = (a, b, what) => assert.ok(Math.abs(Number(a) - Number(b)) <= 1e-9 * Math.max(1, Math.abs(Number(b))), `${what}: screen ${a}, API ${b}`);

const userDataDir = mkdtempSync(join(tmpdir(), "canopy-chromium-"));
const downloads = mkdtempSync(join(tmpdir(), "canopy-downloads-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  acceptDownloads: true,
  downloadsPath: downloads,
  viewport: { width: 1440, height: 1000 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const figures = {};
try {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));

  // 1. Overview (7 days, by team): cards and breakdown equal the API.
  const started = Date.now();
  const overviewResp = nextResponse(page, "/v1/overview");
  const totalsResp = nextResponse(page, "/v1/totals");
  await page.goto(new URL("?range=7d&group=team", base).toString());
  await panelsLoaded(page, ["overview", "realtime", "trend", "breakdown", "top", "fleet"]);
  figures.overview_render_ms = Date.now() - started;
  const overview = await apiAnswer((await overviewResp).url());
  const cards = await page.$$eval("#overview-cards .card .value", (vs) => vs.map((v) => v.dataset.value));
  close(cards[1], overview.this_month.totals.total.location_kg_co2e, "this month location kg");
  close(cards[2], overview.this_month.totals.total.market_kg_co2e, "this month market kg");
  close(cards[3], overview.this_month.totals.total.energy_kwh, "this month kWh");
  assert.ok(Number(cards[1]) > 0, "this month's CO2e is zero: the demo stored nothing");
  const teams = await apiAnswer((await totalsResp).url());
  assert.deepEqual(await firstColumn(page, "#breakdown-table"), teams.rows.map((r) => r.dims.team || "(none)"));
  (await columnValues(page, "#breakdown-table", 1)).forEach((v, i) => close(v, teams.rows[i].metrics.location_kg_co2e, `team ${teams.rows[i].dims.team}`));
  assert.ok(teams.rows.length >= 3, `expected several teams, found ${teams.rows.length}`);
  const fleetRows = await page.$$eval("#fleet-table tbody tr", (trs) => trs.length);
  assert.ok(fleetRows > 1, "fleet table is empty");
  const noAgent = await page.$$eval("#fleet-table tbody tr.missing", (trs) => trs.length);
  assert.ok(noAgent >= 1, "expected the management account listed without an agent");
  await page.screenshot({ path: join(shots, "1-overview.png"), fullPage: false });

  // 2. Change the time range to 24 hours: URL and numbers follow.
  const dayTotals = nextResponse(page, "/v1/totals", (q) => Number(q.get("to")) - Number(q.get("from")) === 86400);
  await page.selectOption("#range", "24h");
  const day = await apiAnswer((await dayTotals).url());
  await panelsLoaded(page, ["breakdown", "top", "trend"]);
  assert.match(page.url(), /range=24h/);
  (await columnValues(page, "#breakdown-table", 1)).forEach((v, i) => close(v, day.rows[i].metrics.location_kg_co2e, `24h team ${day.rows[i].dims.team}`));
  close(
    day.rows.reduce((s, r) => s + r.metrics.location_kg_co2e, 0),
    day.total.location_kg_co2e,
    "24h team rows add up to the total",
  );
  await page.screenshot({ path: join(shots, "2-range-24h.png") });

  // 3. Drill into the first team: filter in the URL, breakdown by service.
  const team = day.rows[0].dims.team;
  const serviceTotals = nextResponse(page, "/v1/totals", (q) => q.get("team") === team && q.get("group_by") === "service");
  await page.click(`#breakdown-table tbody tr:first-child button.link`);
  const services = await apiAnswer((await serviceTotals).url());
  await panelsLoaded(page, ["breakdown", "top"]);
  assert.match(page.url(), new RegExp(`team=${encodeURIComponent(team)}`));
  assert.deepEqual(await firstColumn(page, "#breakdown-table"), services.rows.map((r) => r.dims.service));
  (await columnValues(page, "#breakdown-table", 1)).forEach((v, i) => close(v, services.rows[i].metrics.location_kg_co2e, `service ${services.rows[i].dims.service}`));
  close(services.total.location_kg_co2e, day.rows[0].metrics.location_kg_co2e, `team ${team} total equals its row`);
  await page.screenshot({ path: join(shots, "3-team.png") });

  // 4. Drill into the team's top resource: its history equals the API.
  const topRows = await firstColumn(page, "#top-table");
  assert.ok(topRows.length > 0, `team ${team} has no top resources`);
  const historyResp = nextResponse(page, "/v1/resource-history");
  await page.click(`#top-table tbody tr:first-child button.link`);
  const history = await apiAnswer((await historyResp).url());
  await panelsLoaded(page, ["resource"]);
  assert.equal(await page.isVisible("#resource-panel"), true);
  assert.equal(new URL((await historyResp).url()).searchParams.get("resource"), topRows[0]);
  const historyValues = await columnValues(page, "#resource-table", 1);
  assert.equal(historyValues.length, history.rows.length);
  historyValues.forEach((v, i) => close(v, history.rows[i].location_kg_co2e, `history bucket ${i}`));
  assert.ok(history.rows.length > 0, "resource history is empty");
  await page.locator("#resource-panel").scrollIntoViewIfNeeded();
  await page.screenshot({ path: join(shots, "4-resource.png") });

  // 5. Export the service breakdown as CSV: same rows and numbers.
  const download = page.waitForEvent("download");
  await page.click(`#breakdown-table button[aria-label^="Export"]`);
  const file = join(downloads, "export.csv");
  await (await download).saveAs(file);
  const lines = readFileSync(file, "utf8").trim().split("\n");
  assert.equal(lines[0], "service,Location kg CO2e,Market kg CO2e,Energy kWh,Facts");
  assert.equal(lines.length - 1, services.rows.length);
  lines.slice(1).forEach((l, i) => {
    const [name, loc, , kwh, facts] = l.split(",");
    assert.equal(name, services.rows[i].dims.service);
    close(loc, services.rows[i].metrics.location_kg_co2e, `csv ${name} kg`);
    close(kwh, services.rows[i].metrics.energy_kwh, `csv ${name} kWh`);
    assert.equal(Number(facts), services.rows[i].metrics.fact_count);
  });
  figures.csv_rows = lines.length - 1;

  // The overview once more, cold (new page), for the README screenshot.
  const again = await context.newPage();
  const t0 = Date.now();
  await again.goto(new URL("?range=7d&group=team", base).toString());
  await panelsLoaded(again, ["overview", "realtime", "trend", "breakdown", "top", "fleet"]);
  figures.overview_second_render_ms = Date.now() - t0;
  await again.screenshot({ path: join(shots, "dashboard.png") });
  assert.deepEqual(errors, [], "page errors");
  figures.teams = teams.rows.length;
  figures.team_drilled = team;
  figures.resource_history_buckets = history.rows.length;
  console.log(JSON.stringify({ ok: true, screenshots: shots, ...figures }));
} finally {
  await context.close();
  rmSync(userDataDir, { recursive: true, force: true });
  rmSync(downloads, { recursive: true, force: true });
}
