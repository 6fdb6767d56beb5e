// Canopy dashboard. All data comes from the aggregator's JSON API; the page
// state (range, grouping, filters, selected resource) lives in the URL.
import { barChart, fmt, lineChart } from "/assets/charts.js";
import { csvCell } from "/assets/csv.js";

const FILTERS = ["team", "account", "ou", "region", "service"];
const DIMENSIONS = ["team", "account", "ou", "region", "service"];
const RANGES = ["24h", "7d", "30d", "month", "last-month"];
const HOUR = 3600, DAY = 86400;
const $ = (id) => document.getElementById(id);

/** The page state read from the URL. */
function readState() {
  const q = new URLSearchParams(location.search);
  const state = {
    range: RANGES.includes(q.get("range")) ? q.get("range") : "7d",
    group: DIMENSIONS.includes(q.get("group")) ? q.get("group") : "team",
    filters: {},
    resource: q.get("resource") || "",
  };
  for (const f of FILTERS) if (q.get(f)) state.filters[f] = q.get(f);
  return state;
}

/** Writes `state` into the URL (a new history entry) and redraws. */
function go(state) {
  const q = new URLSearchParams();
  q.set("range", state.range);
  q.set("group", state.group);
  for (const [k, v] of Object.entries(state.filters)) if (v) q.set(k, v);
  if (state.resource) q.set("resource", state.resource);
  history.pushState(null, "", `${location.pathname}?${q}`);
  render();
}

function monthStart(unixS, delta) {
  const d = new Date(unixS * 1000);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + delta, 1) / 1000;
}

/** [from, to) and step of a named range at `nowS`. */
export function rangeBounds(range, nowS) {
  const hourEnd = Math.floor(nowS / HOUR) * HOUR + HOUR;
  const dayEnd = Math.floor(nowS / DAY) * DAY + DAY;
  switch (range) {
    case "24h": return { from: hourEnd - DAY, to: hourEnd, step: "1h", stepS: HOUR };
    case "30d": return { from: dayEnd - 30 * DAY, to: dayEnd, step: "1d", stepS: DAY };
    case "month": return { from: monthStart(nowS, 0), to: hourEnd, step: "1h", stepS: HOUR };
    case "last-month": return { from: monthStart(nowS, -1), to: monthStart(nowS, 0), step: "1d", stepS: DAY };
    default: return { from: hourEnd - 7 * DAY, to: hourEnd, step: "1h", stepS: HOUR };
  }
}

async function api(path, params) {
  const q = new URLSearchParams(params);
  const resp = await fetch(`${path}?${q}`, { headers: { accept: "application/json" } });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || `${path} answered ${resp.status}`);
  return body;
}

function status(id, text, isError) {
  const node = $(id);
  node.textContent = text;
  node.classList.toggle("error", Boolean(isError));
}

/** Runs `load` for one panel with loading, empty and error states. */
async function panel(name, load) {
  status(`${name}-status`, "Loading…");
  try {
    const empty = await load();
    status(`${name}-status`, empty ? "No data for this range and these filters." : "");
  } catch (e) {
    status(`${name}-status`, `Could not load: ${e.message}`, true);
  }
}

/** Renders a table with a CSV export button. Columns: {key, label, num, fmt}. */
function table(container, columns, rows, filename, onClick) {
  const bar = document.createElement("div");
  bar.className = "toolbar";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "small";
  button.textContent = "Export CSV";
  button.setAttribute("aria-label", `Export ${filename} as CSV`);
  button.addEventListener("click", () => {
    const lines = [columns.map((c) => csvCell(c.label)).join(",")];
    for (const r of rows) lines.push(columns.map((c) => csvCell(r[c.key])).join(","));
    const blob = new Blob([lines.join("\n") + "\n"], { type: "text/csv" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `${filename}.csv`;
    document.body.append(a);
    a.click();
    a.remove();
  });
  bar.append(button);
  const t = document.createElement("table");
  t.setAttribute("aria-label", filename);
  const head = t.createTHead().insertRow();
  for (const c of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = c.label;
    if (c.num) th.className = "num";
    head.append(th);
  }
  const body = t.createTBody();
  for (const r of rows) {
    const tr = body.insertRow();
    if (r._class) tr.className = r._class;
    columns.forEach((c, i) => {
      const td = tr.insertCell();
      const v = r[c.key];
      if (c.num) {
        td.className = "num";
        td.dataset.value = v ?? "";
        td.textContent = (c.fmt || fmt)(v);
      } else if (i === 0 && onClick) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "link";
        b.textContent = v === "" ? "(none)" : v;
        b.setAttribute("aria-label", `Drill into ${v}`);
        b.addEventListener("click", () => onClick(r));
        td.append(b);
      } else {
        td.textContent = v ?? "–";
      }
    });
  }
  container.replaceChildren(bar, t);
}

function card(label, value, unit, sub, subClass) {
  const c = document.createElement("div");
  c.className = "card";
  c.innerHTML = `<div class="label"></div><div class="value"></div><div class="sub"></div>`;
  c.children[0].textContent = label;
  c.children[1].textContent = `${fmt(value)} ${unit}`;
  c.children[1].dataset.value = value;
  c.children[2].textContent = sub || "";
  if (subClass) c.children[2].classList.add(subClass);
  return c;
}

// What the market-based figure rests on, from the answer's factor sets: a
// figure whose market factor is the location factor (no market data) says
// so instead of passing for a market-based one.
function marketBasis(totals) {
  const sets = totals ? totals.factor_sets || [] : [];
  if (sets.length === 0) return "no data";
  const fallback = sets.filter((s) => s.market_factor_source === "location-fallback" || s.market_factor_source === "not-recorded");
  if (fallback.length === sets.length) return "no market factors: equals location-based";
  const used = [...new Set(sets.filter((s) => !fallback.includes(s)).map((s) => `${s.market_factor_source} ${s.market_factor_vintage}`))];
  return `${fallback.length ? "partly location-based; " : ""}factors: ${used.join(", ")}`;
}

// Share of this month's energy priced with hourly grid intensity (the rest
// with annual factors).
function hourlyCard(h) {
  const share = h && h.share !== null && h.share !== undefined ? h.share : 0;
  const c = card("This month, priced hourly", share * 100, "% of energy",
    h && h.of_energy_kwh > 0 ? `${fmt(h.energy_kwh)} of ${fmt(h.of_energy_kwh)} kWh; the rest annual factors` : "no energy yet");
  c.children[1].dataset.value = share;
  return c;
}

async function loadOverview(state) {
  const o = await api("/v1/overview", state.filters);
  const t = (k) => (o[k].totals ? o[k].totals.total : { location_kg_co2e: 0, market_kg_co2e: 0, energy_kwh: 0, fact_count: 0 });
  const hour = t("last_hour"), month = t("this_month"), last = t("last_month");
  const trend = o.trend_ratio;
  const trendText = trend === null ? "no data last month" : `${trend >= 0 ? "+" : ""}${(trend * 100).toFixed(1)}% vs last month to date`;
  $("overview-cards").replaceChildren(
    card("Last hour, location-based", hour.location_kg_co2e, "kg CO2e", `${fmt(hour.energy_kwh)} kWh`),
    card("This month, location-based", month.location_kg_co2e, "kg CO2e", trendText, trend === null ? "" : trend > 0 ? "up" : "down"),
    card("This month, market-based", month.market_kg_co2e, "kg CO2e", marketBasis(o.this_month.totals)),
    card("This month, energy", month.energy_kwh, "kWh", `facility energy (incl. PUE); IT ${fmt(month.it_energy_kwh || 0)} kWh`),
    card("Last month, location-based", last.location_kg_co2e, "kg CO2e", `market ${fmt(last.market_kg_co2e)} kg`),
    card("This month, operational (location)", month.operational_location_kg_co2e || 0, "kg CO2e",
      `${fmt(month.operational_location_low_kg_co2e || 0)}–${fmt(month.operational_location_high_kg_co2e || 0)} kg`),
    card("This month, operational (market)", month.operational_market_kg_co2e || 0, "kg CO2e",
      `${fmt(month.operational_market_low_kg_co2e || 0)}–${fmt(month.operational_market_high_kg_co2e || 0)} kg`),
    card("This month, embodied", month.embodied_kg_co2e || 0, "kg CO2e", "hardware manufacturing, amortised"),
    hourlyCard(o.this_month_hourly_priced),
  );
  const shares = o.this_month.totals ? o.this_month.totals.by_quality : [];
  const bar = document.createElement("div");
  bar.className = "bar";
  const legend = document.createElement("div");
  legend.className = "legend";
  for (const q of ["measured", "estimated", "default"]) {
    const s = shares.find((x) => x.quality === q);
    const share = s ? s.share_of_location_co2e : 0;
    const span = document.createElement("span");
    span.className = `q-${q}`;
    span.style.width = `${share * 100}%`;
    bar.append(span);
    const item = document.createElement("span");
    item.innerHTML = `<i class="q-${q}"></i>`;
    item.append(`${q}: ${(share * 100).toFixed(1)}%`);
    item.dataset.quality = q;
    item.dataset.value = share;
    legend.append(item);
  }
  bar.setAttribute("role", "img");
  bar.setAttribute("aria-label", "Share of this month's CO2e by estimate quality");
  $("quality").replaceChildren(bar, legend);
  return month.fact_count === 0 && hour.fact_count === 0;
}

async function loadRealtime(state) {
  const r = await api("/v1/realtime", state.filters);
  const buckets = r.rows.map((row) => ({ t: row.bucket_start_unix_s, v: row.metrics.location_kg_co2e }));
  barChart($("realtime-chart"), buckets, r.from_unix_s, r.to_unix_s, 300, "kg CO2e", "Location-based CO2e per 5 minutes over the last hour");
  return buckets.length === 0;
}

async function loadTrend(state, b) {
  const r = await api("/v1/series", { ...state.filters, from: b.from, to: b.to, step: b.step, limit: 10000 });
  const loc = r.rows.map((row) => ({ t: row.bucket_start_unix_s, v: row.metrics.location_kg_co2e }));
  const mkt = r.rows.map((row) => ({ t: row.bucket_start_unix_s, v: row.metrics.market_kg_co2e }));
  const series = [
    { name: "location-based kg CO2e", cls: "line", points: loc },
    { name: "market-based kg CO2e", cls: "line2", points: mkt },
  ];
  let to = b.to;
  let title = `CO2e per ${b.step}, location-based (solid) and market-based (dashed)`;
  // Daily steps: the location-based forecast to the end of the month with
  // its 80 % (dark) and 95 % (light) bands (GET /v1/forecast, same scope).
  const scoped = Object.keys(state.filters).every((k) => ["team", "account", "ou", "service"].includes(k));
  if (b.step === "1d" && scoped) {
    const f = await api("/v1/forecast", { ...state.filters, horizon: "month" }).catch(() => null);
    if (f && f.status === "ok" && f.points.length > 0) {
      const pts = f.points.filter((p) => p.day_unix_s >= b.from);
      series.push({ name: "forecast 95 %", cls: "forecast", points: [],
        band: pts.map((p) => ({ t: p.day_unix_s, lo: p.lower95_kg_co2e, hi: p.upper95_kg_co2e })), bandCls: "band95" });
      series.push({ name: `forecast (${f.model.name})`, cls: "forecast", points: pts.map((p) => ({ t: p.day_unix_s, v: p.point_kg_co2e })),
        band: pts.map((p) => ({ t: p.day_unix_s, lo: p.lower80_kg_co2e, hi: p.upper80_kg_co2e })), bandCls: "band80" });
      to = Math.max(to, pts[pts.length - 1].day_unix_s + 86400);
      title += "; forecast to the month's end (dotted) with 80 % and 95 % intervals";
    }
  }
  lineChart($("trend-chart"), series, b.from, to, "kg CO2e", title);
  return loc.length === 0;
}

const METRIC_COLUMNS = [
  { key: "location_kg_co2e", label: "Location kg CO2e", num: true },
  { key: "market_kg_co2e", label: "Market kg CO2e", num: true },
  { key: "energy_kwh", label: "Energy kWh", num: true },
  { key: "fact_count", label: "Facts", num: true, fmt: (v) => String(v) },
];

async function loadBreakdown(state, b) {
  const r = await api("/v1/totals", { ...state.filters, from: b.from, to: b.to, group_by: state.group, limit: 500 });
  const rows = r.rows.map((row) => ({ key: row.dims[state.group], ...row.metrics }));
  $("h-breakdown").textContent = `Breakdown by ${state.group}`;
  table($("breakdown-table"), [{ key: "key", label: state.group }, ...METRIC_COLUMNS], rows, `canopy-by-${state.group}`, (row) => {
    const next = structuredClone(state);
    next.filters[state.group] = row.key;
    next.resource = "";
    const deeper = { team: "service", account: "region", ou: "account", region: "service", service: "team" }[state.group];
    if (deeper) next.group = deeper;
    go(next);
  });
  return rows.length === 0;
}

async function loadTop(state, b) {
  const r = await api("/v1/top-resources", { ...state.filters, from: b.from, to: b.to, limit: 20 });
  const rows = r.rows.map((row) => ({
    resource_id: row.resource_id, account_id: row.account_id, region: row.region, service: row.service,
    resource_type: row.resource_type, team: row.team, ...row.metrics,
  }));
  table($("top-table"), [
    { key: "resource_id", label: "Resource" }, { key: "account_id", label: "Account" }, { key: "region", label: "Region" },
    { key: "service", label: "Service" }, { key: "team", label: "Team" }, ...METRIC_COLUMNS,
  ], rows, "canopy-top-resources", (row) => go({ ...state, resource: `${row.account_id}|${row.region}|${row.resource_id}` }));
  return rows.length === 0;
}

async function loadResource(state, b) {
  const [account, region, resource] = state.resource.split("|");
  const stepS = b.stepS;
  const r = await api("/v1/resource-history", { account, region, resource, from: b.from, to: b.to, step: b.step });
  $("h-resource").textContent = `Resource history: ${resource}`;
  const meta = r.resource
    ? `${r.resource.service} · ${r.resource.resource_type} · team ${r.resource.team} · account ${account} · ${region}${r.resource.deleted ? " · terminated" : ""}`
    : `account ${account} · ${region} (no inventory record)`;
  $("resource-meta").textContent = meta;
  const pts = r.rows.map((row) => ({ t: row.bucket_start_unix_s, v: row.location_kg_co2e }));
  barChart($("resource-chart"), pts, b.from, b.to, stepS, "kg CO2e", `Location-based CO2e of ${resource} per ${b.step}`);
  table($("resource-table"), [
    { key: "bucket", label: "Bucket start (UTC)" }, ...METRIC_COLUMNS,
  ], r.rows.map((row) => ({ bucket: new Date(row.bucket_start_unix_s * 1000).toISOString(), ...row })), `canopy-resource-${resource}`);
  return pts.length === 0;
}

async function loadFleet() {
  const r = await api("/v1/fleet", {});
  const rows = r.cells.map((c) => ({
    ...c,
    agent_id: c.agent_id ?? "no agent",
    region: c.region ?? "–",
    last_batch: c.last_batch_unix_s ? new Date(c.last_batch_unix_s * 1000).toISOString() : "never",
    _class: c.agent_id ? "" : "missing",
  }));
  table($("fleet-table"), [
    { key: "account_id", label: "Account" }, { key: "account_name", label: "Name" }, { key: "ou_path", label: "OU" },
    { key: "region", label: "Region" }, { key: "agent_id", label: "Agent" }, { key: "last_batch", label: "Last batch (UTC)" },
    { key: "lag_s", label: "Lag s", num: true, fmt: (v) => (v === null ? "–" : String(v)) },
    { key: "batches", label: "Batches", num: true, fmt: (v) => (v === null ? "–" : String(v)) },
    { key: "agent_version", label: "Version", fmt: (v) => v ?? "–" },
    { key: "outbox_backlog", label: "Backlog batches", num: true, fmt: (v) => (v === null ? "–" : String(v)) },
    { key: "outbox_backlog_bytes", label: "Backlog bytes", num: true, fmt: (v) => (v === null ? "–" : String(v)) },
    { key: "error_count", label: "Errors", num: true, fmt: (v) => (v === null ? "–" : String(v)) },
    { key: "records_shed", label: "Shed", num: true, fmt: (v) => (v === null ? "–" : String(v)) },
  ], rows, "canopy-fleet");
  return rows.length === 0;
}

function syncControls(state) {
  $("range").value = state.range;
  $("group").value = state.group;
  for (const f of FILTERS) $(`f-${f}`).value = state.filters[f] || "";
}

function render() {
  const state = readState();
  syncControls(state);
  const b = rangeBounds(state.range, Date.now() / 1000);
  panel("overview", () => loadOverview(state));
  panel("realtime", () => loadRealtime(state));
  panel("trend", () => loadTrend(state, b));
  panel("breakdown", () => loadBreakdown(state, b));
  panel("top", () => loadTop(state, b));
  $("resource-panel").hidden = !state.resource;
  if (state.resource) panel("resource", () => loadResource(state, b));
  panel("fleet", () => loadFleet());
}

function init() {
  $("controls").addEventListener("submit", (e) => {
    e.preventDefault();
    const state = readState();
    state.range = $("range").value;
    state.group = $("group").value;
    state.filters = {};
    for (const f of FILTERS) {
      const v = $(`f-${f}`).value.trim();
      if (v) state.filters[f] = v;
    }
    go(state);
  });
  for (const id of ["range", "group"]) $(id).addEventListener("change", () => $("controls").requestSubmit());
  $("clear").addEventListener("click", () => go({ ...readState(), filters: {}, resource: "" }));
  window.addEventListener("popstate", render);
  render();
  setInterval(() => panel("realtime", () => loadRealtime(readState())), 60_000);
}

init();
