// The evidence of an upgrade: the experiment report, the rollouts and their gates, evaluations.

import { intervalBar, splitBar } from "./charts.js";
import { compact, h, num, pct, when } from "./dom.js";

function arms(ab) {
  const list = Object.values(ab.arms);
  if (!list.length) return h("p", { class: "muted" }, "No routed requests in this experiment yet.");
  const ctrMax = Math.max(0.01, ...list.map((a) => a.ctr_ci[1]));
  const mrrMax = Math.max(0.01, ...list.map((a) => a.mrr_ci[1]));
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, ["version", "requests", "clicks", "CTR (95% interval)", "", "MRR (95% interval)", "", "conversions"].map((t) => h("th", { scope: "col" }, t)))),
    h(
      "tbody",
      {},
      list.map((a) =>
        h(
          "tr",
          {},
          h("th", { scope: "row" }, a.version, a.version === ab.control ? h("span", { class: "small muted" }, " control") : null),
          h("td", { class: "num" }, num(a.requests)),
          h("td", { class: "num" }, num(a.clicks)),
          h("td", { class: "num" }, `${pct(a.ctr)} [${pct(a.ctr_ci[0])}, ${pct(a.ctr_ci[1])}]`),
          h("td", {}, intervalBar(a.ctr, a.ctr_ci, ctrMax, `CTR of ${a.version}`)),
          h("td", { class: "num" }, `${num(a.mrr, 3)} [${num(a.mrr_ci[0], 3)}, ${num(a.mrr_ci[1], 3)}]`),
          h("td", {}, intervalBar(a.mrr, a.mrr_ci, mrrMax, `MRR of ${a.version}`)),
          h("td", { class: "num" }, `${num(a.conversions)} (${pct(a.conversion_rate)})`),
        ),
      ),
    ),
  );
}

export function experimentView(report, names) {
  const parts = [h("p", { class: "small muted" }, `Experiment ${report.experiment}, started ${when(report.started_at)}.`), arms(report.ab)];
  for (const c of Object.values(report.ab.comparisons)) {
    parts.push(
      h(
        "p",
        {},
        h("span", { class: "verdict" }, `${c.candidate} vs ${c.control}: ${c.verdict}.`),
        ` CTR difference ${pct(c.difference, 2)} [${pct(c.ci[0], 2)}, ${pct(c.ci[1], 2)}], p = ${num(c.p_value, 3)}`,
      ),
    );
  }
  const il = report.interleaving;
  if (il) {
    const [a, b] = il.versions;
    parts.push(
      h("h4", {}, "Interleaving"),
      splitBar([[a, il.wins[a] ?? 0], ["ties", il.ties], [b, il.wins[b] ?? 0]], names),
      h("p", {}, `${a} wins ${num(il.wins[a] ?? 0)}, ties ${num(il.ties)}, ${b} wins ${num(il.wins[b] ?? 0)} of ${num(il.impressions)} impressions; p = ${num(il.p_value, 3)}. `, h("span", { class: "verdict" }, il.verdict)),
    );
  }
  for (const sh of report.shadow) {
    parts.push(
      h("p", { class: "small" }, `Shadow ${sh.candidate}: ${num(sh.mirrored)} mirrored, ${num(sh.errors)} errors, p50 ${num(sh.latency_ms.p50, 1)} ms (live ${num(sh.live_latency_ms.p50, 1)} ms), overlap@10 ${num(sh.overlap_at_10, 2)}${sh.last_error ? `; last error: ${sh.last_error}` : ""}`),
    );
  }
  return parts;
}

function gatesTable(gates) {
  if (!gates.length) return null;
  return h(
    "table",
    { class: "gates" },
    h("thead", {}, h("tr", {}, ["gate", "passed", "value", "limit", "detail"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, gates.map((g) => h("tr", {}, h("td", {}, g.gate), h("td", { class: g.passed ? "outcome-ok" : "outcome-bad" }, g.passed ? "✓ passed" : "✗ failed"), h("td", {}, g.value ?? "—"), h("td", {}, g.limit ?? "—"), h("td", {}, g.detail)))),
  );
}

export function rolloutsView(rollouts, onStop) {
  if (!rollouts.length) return h("p", { class: "muted" }, "No rollouts yet.");
  return rollouts.slice(0, 5).map((r) =>
    h(
      "div",
      { class: "rollout", dataset: { rollout: String(r.id) } },
      h(
        "p",
        {},
        h("strong", {}, `#${r.id} ${r.live} → ${r.to}`),
        ` ${r.status}, ${r.step}% on ${r.to} (steps ${r.steps.join(", ")}; ${num(r.min_requests)} requests per step) `,
        r.status === "running" ? h("button", { type: "button", dataset: { key: `stop:${r.id}` }, onclick: () => onStop(r.id) }, "Stop rollout…") : null,
      ),
      h("p", { class: "small" }, r.reason),
      r.window
        ? h("p", { class: "small muted" }, `This step since ${when(r.window.since)}: ` + Object.entries(r.window.requests).map(([n, c]) => `${n} ${num(c)} requests, ${num(r.window.errors[n] ?? 0)} errors`).join("; "))
        : null,
      h(
        "ol",
        { class: "timeline", "aria-label": `rollout ${r.id} transitions` },
        r.transitions.map((t) => h("li", { class: t.outcome }, h("strong", {}, t.outcome), ` ${when(t.at)} · ${t.step}% · ${compact(t.weights)}`, h("div", { class: "small" }, t.reason), gatesTable(t.gates))),
      ),
    ),
  );
}

function scoreRows(versions, metricNames) {
  return Object.entries(versions).map(([name, sc]) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, name),
      h("td", {}, sc.state),
      h("td", {}, sc.model_label),
      ...metricNames.map((m) => h("td", { class: "num" }, typeof sc[m] === "number" ? num(sc[m], 3) : sc[m]?.mean !== undefined ? num(sc[m].mean, 3) : "—")),
      h("td", { class: "num" }, `${num(sc.latency_ms.p50, 2)} / ${num(sc.latency_ms.p99, 2)}`),
    ),
  );
}

// An evaluation's answer: judged scores per version (POST .../evaluate) or a candidate compared
// with the live version on logged queries (POST .../versions/{v}/evaluate).
export function evaluationView(entry) {
  const { result, at, what } = entry;
  const versions = result.versions;
  const first = Object.values(versions)[0] ?? {};
  const skip = new Set(["latency_ms", "queries", "state", "model_label", "records", "warning", "per_query", "top1", "topk"]);
  const metricNames = result.candidate ? ["ndcg", "top1"] : Object.keys(first).filter((k) => !skip.has(k));
  const parts = [h("p", { class: "small muted" }, `${what}, ${when(at)}`)];
  if (result.candidate) {
    parts.push(
      h("p", {}, `${result.candidate} against ${result.against}: ${num(result.sample.used)} logged queries; top-${result.overlap.k} overlap Jaccard ${num(result.overlap.jaccard, 3)}, RBO ${num(result.overlap.rbo, 3)}; coverage ${pct(result.coverage.ratio)} of ${num(result.coverage.records)} records.`),
    );
  }
  parts.push(
    h(
      "table",
      {},
      h("thead", {}, h("tr", {}, ["version", "state", "model", ...metricNames, "latency p50 / p99 (ms)"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, scoreRows(versions, metricNames)),
    ),
  );
  for (const warning of [...(result.warnings ?? []), ...Object.values(versions).map((v) => v.warning).filter(Boolean)]) {
    parts.push(h("p", { class: "small error" }, warning));
  }
  return h("div", { class: "evaluation" }, parts);
}
