// Small SVG charts written for the Canopy dashboard (no library).
const NS = "http://www.w3.org/2000/svg";
const W = 640, H = 200, L = 56, R = 10, T = 10, B = 24;

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** Formats a number with at most 3 significant decimals. */
export function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const a = Math.abs(value);
  if (a >= 1000) return value.toLocaleString("en", { maximumFractionDigits: 0 });
  if (a >= 1) return value.toLocaleString("en", { maximumFractionDigits: 2 });
  return value.toLocaleString("en", { maximumSignificantDigits: 3 });
}

function timeLabel(unixS, spanS) {
  const d = new Date(unixS * 1000).toISOString();
  return spanS <= 2 * 86400 ? d.slice(11, 16) : d.slice(5, 10);
}

function frame(svg, maxV, fromS, toS, unit) {
  svg.append(el("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  svg.append(el("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
  for (let i = 0; i <= 4; i++) {
    const v = (maxV * i) / 4;
    const y = H - B - ((H - B - T) * i) / 4;
    svg.append(el("text", { x: L - 4, y: y + 3, "text-anchor": "end" }, fmt(v)));
  }
  svg.append(el("text", { x: 2, y: T + 8 }, unit));
  for (let i = 0; i <= 4; i++) {
    const t = fromS + ((toS - fromS) * i) / 4;
    svg.append(el("text", { x: L + ((W - L - R) * i) / 4, y: H - 6, "text-anchor": "middle" }, timeLabel(t, toS - fromS)));
  }
}

/**
 * Draws bars, one per bucket, into `container`.
 * `buckets`: [{t, v}] with t the bucket start (Unix seconds); `stepS` the width.
 */
export function barChart(container, buckets, fromS, toS, stepS, unit, title) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, preserveAspectRatio: "none" });
  const maxV = Math.max(1e-12, ...buckets.map((b) => b.v));
  frame(svg, maxV, fromS, toS, unit);
  const xs = (t) => L + ((W - L - R) * (t - fromS)) / (toS - fromS);
  const bw = Math.max(1, xs(fromS + stepS) - xs(fromS) - 2);
  for (const b of buckets) {
    const h = ((H - B - T) * b.v) / maxV;
    const rect = el("rect", { class: "barfill", x: xs(b.t) + 1, y: H - B - h, width: bw, height: h });
    rect.append(el("title", {}, `${new Date(b.t * 1000).toISOString().slice(0, 16)}Z: ${fmt(b.v)} ${unit}`));
    svg.append(rect);
  }
  container.replaceChildren(svg);
}

/**
 * Draws one or two lines into `container`.
 * `series`: [{name, cls, points: [{t, v}], band?: [{t, lo, hi}], bandCls?}],
 * points sorted by t; a band is drawn as a shaded interval.
 */
export function lineChart(container, series, fromS, toS, unit, title) {
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, preserveAspectRatio: "none" });
  const maxV = Math.max(1e-12, ...series.flatMap((s) => s.points.map((p) => p.v)),
    ...series.flatMap((s) => (s.band || []).map((p) => p.hi)));
  frame(svg, maxV, fromS, toS, unit);
  const xs = (t) => L + ((W - L - R) * (t - fromS)) / (toS - fromS);
  const ys = (v) => H - B - ((H - B - T) * v) / maxV;
  // Interval bands ({t, lo, hi}) under the lines.
  for (const s of series) {
    if (!s.band || s.band.length === 0) continue;
    const upper = s.band.map((p) => `${xs(p.t).toFixed(1)},${ys(p.hi).toFixed(1)}`);
    const lower = s.band.slice().reverse().map((p) => `${xs(p.t).toFixed(1)},${ys(p.lo).toFixed(1)}`);
    const band = el("polygon", { class: s.bandCls || "band", points: upper.concat(lower).join(" ") });
    band.append(el("title", {}, `${s.name} interval`));
    svg.append(band);
  }
  for (const s of series) {
    if (s.points.length === 0) continue;
    const d = s.points.map((p, i) => `${i ? "L" : "M"}${xs(p.t).toFixed(1)},${ys(p.v).toFixed(1)}`).join(" ");
    const path = el("path", { class: s.cls, d });
    path.append(el("title", {}, s.name));
    svg.append(path);
  }
  container.replaceChildren(svg);
}
