// What the console shows of a collection: its versions, traffic, request charts and events.

import { lineChart, trafficTimeline } from "./charts.js";
import { bytes, colorOf, compact, duration, h, num, pct, when } from "./dom.js";

export function health(info) {
  const states = info.versions.map((v) => v.state);
  if (info.versions.some((v) => v.error || v.state === "failed")) return "bad";
  if (states.some((st) => st !== "ready")) return "warn";
  return "ok";
}

export function collectionItem(info, current, onSelect) {
  const building = info.versions.filter((v) => v.state !== "ready").length;
  const status = health(info);
  const live = Object.entries(info.traffic).filter(([, w]) => w > 0).map(([n]) => n).join(", ");
  const words = { ok: "healthy", warn: "building", bad: "failing" }[status];
  return h(
    "li",
    {},
    h(
      "button",
      { type: "button", "aria-current": info.name === current ? "true" : "false", dataset: { key: `c:${info.name}` }, onclick: () => onSelect(info.name) },
      h("span", { class: `dot ${status}`, role: "img", "aria-label": words }),
      info.name,
      h("span", { class: "sub" }, `${info.versions.length} versions${building ? `, ${building} building` : ""} · ${num(info.records)} records`),
      h("span", { class: "sub" }, `live: ${live || "—"}`),
    ),
  );
}

function progressCell(v) {
  const p = v.progress;
  if (!p || v.state === "ready") return h("td", {}, v.state === "ready" ? "done" : "—");
  const share = p.total ? p.done / p.total : 0;
  const bar = h("div", {});
  bar.style.width = `${(share * 100).toFixed(1)}%`;
  return h(
    "td",
    {},
    h("div", { class: "progress", role: "progressbar", "aria-label": `${v.name} ${p.phase}`, "aria-valuemin": "0", "aria-valuemax": String(p.total), "aria-valuenow": String(p.done) }, bar),
    h("span", { class: "small", dataset: { progress: v.name } }, `${p.phase} ${num(p.done)} / ${num(p.total)} (${pct(share, 0)})`),
    h("br"),
    h("span", { class: "small muted" }, `${num(p.rate, 1)}/s · ETA ${duration(p.eta_s)}`),
  );
}

function indexLabel(v) {
  const kinds = Object.values(v.indexes || {});
  const used = [...new Set(kinds.map((i) => (i.precision && i.precision !== "f32" ? `${i.type} ${i.precision}` : i.type)))];
  const declared = v.index?.type ?? "";
  return used.length ? `${declared}${declared && used.join() !== declared ? ` → ${used.join(", ")}` : ""}` : declared;
}

export function versionsTable(info, actions) {
  const head = ["version", "state", "model", "index", "progress", "applied seq", "lag", "vectors", "memory", "disk", "quarantined", "weight", "actions"];
  const numeric = new Set(["applied seq", "lag", "vectors", "memory", "disk", "quarantined", "weight"]);
  const rows = info.versions.map((v) =>
    h(
      "tr",
      { dataset: { version: v.name } },
      h("th", { scope: "row" }, v.name),
      h("td", {}, h("span", { class: `badge ${v.error ? "failing" : v.state}` }, v.error ? `${v.state}, failing` : v.state), v.error ? h("div", { class: "small error" }, v.error) : null),
      h("td", { title: compact(v.model) }, v.model_label, h("div", { class: "small muted" }, `dim ${v.dim}`)),
      h("td", {}, indexLabel(v)),
      progressCell(v),
      h("td", { class: "num" }, num(v.applied_seq)),
      h("td", { class: "num" }, num(v.lag)),
      h("td", { class: "num" }, num(v.records)),
      h("td", { class: "num" }, bytes(v.memory_bytes)),
      h("td", { class: "num" }, bytes(v.disk_bytes)),
      h("td", { class: "num" }, v.quarantined ? h("span", { class: "error" }, num(v.quarantined)) : "0", v.quarantine_skipped ? h("div", { class: "small muted" }, `${v.quarantine_skipped} skipped`) : null),
      h("td", { class: "num" }, num(v.weight)),
      h(
        "td",
        {},
        h("button", { type: "button", dataset: { key: `promote:${v.name}` }, disabled: v.state !== "ready" || v.weight === info.versions.reduce((a, x) => a + x.weight, 0), onclick: () => actions.promote(v.name), "aria-label": `Promote ${v.name}` }, "Promote…"),
        " ",
        h("button", { type: "button", dataset: { key: `retire:${v.name}` }, disabled: v.weight > 0, onclick: () => actions.retire(v.name), "aria-label": `Retire ${v.name}` }, "Retire…"),
      ),
    ),
  );
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, head.map((name) => h("th", { scope: "col", class: numeric.has(name) ? "num" : null }, name)))),
    h("tbody", {}, rows),
  );
}

// One slider per version; versions that are not ready are shown but can't get traffic.
export function sliders(info, draft, onInput) {
  const max = String(Math.max(100, ...Object.values(draft)));
  return info.versions.map((v) => {
    const id = `weight-${v.name}`;
    const out = h("output", { for: id, id: `${id}-out` }, String(draft[v.name] ?? 0));
    const input = h("input", {
      type: "range",
      id,
      min: "0",
      max,
      step: "1",
      value: String(draft[v.name] ?? 0),
      disabled: v.state !== "ready" && !(draft[v.name] > 0),
      dataset: { key: `slider:${v.name}`, version: v.name },
      "aria-describedby": `${id}-out`,
      oninput: (event) => {
        out.value = event.target.value;
        onInput(v.name, Number(event.target.value));
      },
    });
    return h("div", { class: "slider" }, h("label", { for: id }, `${v.name}${v.state === "ready" ? "" : " (building)"}`), input, out);
  });
}

export function trafficView(traffic, names, now) {
  const entries = [...traffic.history].reverse().slice(0, 8);
  const extras = [];
  if (traffic.shadow) extras.push(`shadow: ${traffic.shadow.percent}% mirrored to ${traffic.shadow.version}`);
  if (traffic.interleave) extras.push(`interleaving ${traffic.interleave.versions.join(" vs ")} on ${traffic.interleave.percent}%`);
  return [
    h("figure", {}, h("figcaption", {}, `Weights now: ${Object.entries(traffic.weights).map(([n, w]) => `${n} ${w}`).join(", ")}`), trafficTimeline(traffic.history, names, now)),
    extras.length ? h("p", { class: "small" }, extras.join(" · ")) : null,
    h(
      "table",
      { class: "small" },
      h("thead", {}, h("tr", {}, h("th", {}, "when"), h("th", {}, "weights"), h("th", {}, "reason"))),
      h("tbody", {}, entries.map((e) => h("tr", {}, h("td", {}, when(e.created_at)), h("td", {}, Object.entries(e.weights).map(([n, w]) => `${n} ${w}`).join(", ")), h("td", {}, e.reason)))),
    ),
  ];
}

export function charts(stats, names) {
  const versions = Object.keys(stats.versions);
  if (!versions.length) return h("p", { class: "muted" }, "No search or recommend requests in the last 15 minutes (this process).");
  const to = stats.now;
  const from = to - stats.window_s;
  const pick = (f) => Object.fromEntries(versions.map((n) => [n, stats.versions[n].map((p) => [p.at + stats.bucket_s / 2, f(p)])]));
  const ms = (v) => `${Number(v.toPrecision(3))} ms`;
  return [
    lineChart({ title: "QPS", series: pick((p) => p.requests / stats.bucket_s), names, from, to, format: (v) => Number(v.toPrecision(3)) }),
    lineChart({ title: "p50 latency", series: pick((p) => p.p50_ms), names, from, to, format: ms }),
    lineChart({ title: "p99 latency", series: pick((p) => p.p99_ms), names, from, to, format: ms }),
    lineChart({ title: "error rate (5xx)", series: pick((p) => (p.requests ? p.errors / p.requests : null)), names, from, to, format: (v) => pct(v, 0) }),
  ];
}

export function eventsTable(events) {
  if (!events.length) return h("p", { class: "muted" }, "No events.");
  return h(
    "table",
    { class: "small" },
    h("thead", {}, h("tr", {}, h("th", {}, "when"), h("th", {}, "version"), h("th", {}, "event"), h("th", {}, "detail"))),
    h("tbody", {}, events.slice(0, 30).map((e) => h("tr", {}, h("td", {}, when(e.at)), h("td", {}, e.version ?? "—"), h("td", {}, e.event), h("td", {}, compact(e.detail))))),
  );
}

export { colorOf };
