// Small SVG charts drawn from the API's numbers: no chart library, nothing to fetch.

import { clock, colorOf, h, s } from "./dom.js";

const W = 320;
const H = 130;
const PAD = { left: 40, right: 8, top: 8, bottom: 18 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

// A line per series over time; points whose y is null leave a gap.
// series: {name: [[t, y|null], ...]}; names: the collection's versions (for colors).
export function lineChart({ title, series, names, format = (v) => String(v), from, to }) {
  const all = Object.values(series).flat().map(([, y]) => y).filter((y) => y !== null);
  const top = niceMax(Math.max(0, ...all));
  const x = (t) => PAD.left + ((t - from) / Math.max(1, to - from)) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / top) * (H - PAD.top - PAD.bottom);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img", "aria-label": title });
  for (const v of [0, top / 2, top]) {
    svg.append(
      s("line", { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), stroke: "#e5e8ee" }),
      s("text", { x: PAD.left - 4, y: y(v) + 3, "text-anchor": "end" }, format(v)),
    );
  }
  svg.append(
    s("text", { x: PAD.left, y: H - 4 }, clock(from)),
    s("text", { x: W - PAD.right, y: H - 4, "text-anchor": "end" }, clock(to)),
  );
  for (const [name, points] of Object.entries(series)) {
    const color = colorOf(names, name);
    let run = [];
    const flush = () => {
      if (run.length === 1) svg.append(s("circle", { cx: run[0][0], cy: run[0][1], r: 2, fill: color }));
      else if (run.length > 1) {
        const d = run.map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
        svg.append(s("polyline", { points: d, fill: "none", stroke: color, "stroke-width": 1.6 }));
      }
      run = [];
    };
    for (const [t, v] of points) {
      if (v === null || v === undefined) flush();
      else run.push([x(t), y(v)]);
    }
    flush();
  }
  const legend = h(
    "div",
    { class: "legend" },
    Object.keys(series).map((name) =>
      h("span", {}, h("span", { class: "swatch", style: null, dataset: { color: colorOf(names, name) } }), name || "(no version)"),
    ),
  );
  for (const sw of legend.querySelectorAll(".swatch")) sw.style.background = sw.dataset.color;
  return h("figure", {}, h("figcaption", {}, title), svg, legend);
}

// A value with its interval on a 0..max scale: a thin bar for the interval, a dot for the value.
export function intervalBar(value, [lo, hi], max, label) {
  const w = 140;
  const sx = (v) => 4 + (Math.max(0, Math.min(max, v)) / (max || 1)) * (w - 8);
  return s(
    "svg",
    { viewBox: `0 0 ${w} 14`, width: w, height: 14, role: "img", "aria-label": label },
    s("line", { x1: 4, x2: w - 4, y1: 7, y2: 7, stroke: "#e5e8ee", "stroke-width": 2 }),
    s("line", { x1: sx(lo), x2: sx(hi), y1: 7, y2: 7, stroke: "#2457c5", "stroke-width": 4, "stroke-linecap": "round" }),
    s("circle", { cx: sx(value), cy: 7, r: 4, fill: "#1d2330" }),
  );
}

// Two counts side by side as one bar (interleaving wins), ties in grey between them.
export function splitBar(parts, names) {
  const total = parts.reduce((sum, [, n]) => sum + n, 0) || 1;
  const w = 300;
  const svg = s("svg", { viewBox: `0 0 ${w} 16`, width: "100%", height: 16, role: "img", "aria-label": parts.map(([n, c]) => `${n}: ${c}`).join(", ") });
  let at = 0;
  for (const [name, n] of parts) {
    const width = (n / total) * w;
    svg.append(s("rect", { x: at, y: 0, width, height: 16, fill: name === "ties" ? "#ced4da" : colorOf(names, name) }));
    at += width;
  }
  return svg;
}

// The traffic weights over time: each history entry holds from its time to the next one, drawn as
// stacked shares.
export function trafficTimeline(history, names, now) {
  const entries = [...history].sort((a, b) => a.created_at - b.created_at);
  if (!entries.length) return h("p", { class: "muted" }, "No traffic history.");
  const from = entries[0].created_at;
  const to = Math.max(now, from + 1);
  const w = 480;
  const bar = 36;
  const x = (t) => ((t - from) / (to - from)) * w;
  const svg = s("svg", { viewBox: `0 0 ${w} ${bar + 16}`, width: "100%", role: "img", "aria-label": "traffic weights over time" });
  entries.forEach((entry, i) => {
    const start = x(entry.created_at);
    const end = x(i + 1 < entries.length ? entries[i + 1].created_at : to);
    const total = Object.values(entry.weights).reduce((a, b) => a + b, 0) || 1;
    let y = 0;
    for (const [name, weight] of Object.entries(entry.weights)) {
      const height = (weight / total) * bar;
      const rect = s("rect", { x: start, y, width: Math.max(1, end - start), height, fill: colorOf(names, name) });
      rect.append(s("title", {}, `${name}: ${weight} (${entry.reason})`));
      svg.append(rect);
      y += height;
    }
  });
  svg.append(
    s("text", { x: 0, y: bar + 12 }, clock(from)),
    s("text", { x: w, y: bar + 12, "text-anchor": "end" }, "now"),
  );
  return svg;
}
