// Side-by-side search: one query against two versions, the hits both found highlighted.

import { call, describeCall } from "./api.js";
import { compact, h, num } from "./dom.js";

function column(name, result, shared, request) {
  const hits = result.hits.map((hit) =>
    h(
      "li",
      { class: shared.has(hit.id) ? "shared" : null, dataset: { id: hit.id } },
      h("span", { class: "id" }, hit.id),
      h("span", { class: "score" }, num(hit.score, 4)),
      Object.keys(hit.fields || {}).length ? h("span", { class: "fields" }, compact(hit.fields)) : null,
      shared.has(hit.id) ? h("span", { class: "small muted" }, ` (also found by the other)`) : null,
    ),
  );
  return h(
    "div",
    { class: "column", dataset: { version: name } },
    h("h4", {}, `${name} `, h("span", { class: "small muted" }, `applied seq ${num(result.applied_seq)} · ${result.hits.length} hits`)),
    h("ol", {}, hits),
    h("details", {}, h("summary", { class: "small" }, "The request"), h("pre", { class: "call" }, request)),
  );
}

function failed(name, err, request) {
  return h("div", { class: "column", dataset: { version: name } }, h("h4", {}, name), h("p", { class: "error" }, err.toString()), h("pre", { class: "call" }, request));
}

export async function sideBySide(container, base, { text, k, kind, a, b }) {
  container.replaceChildren(h("p", { class: "muted" }, "Searching…"));
  const path = `${base}/search`;
  const bodies = [a, b].map((version) => ({ text, k, kind, version }));
  const answers = await Promise.allSettled(bodies.map((body) => call("POST", path, body)));
  const ids = answers.map((r) => new Set(r.status === "fulfilled" ? r.value.hits.map((hit) => hit.id) : []));
  const shared = new Set([...ids[0]].filter((id) => ids[1].has(id)));
  const columns = answers.map((r, i) => {
    const request = describeCall("POST", path, bodies[i]);
    return r.status === "fulfilled" ? column(bodies[i].version, r.value, shared, request) : failed(bodies[i].version, r.reason, request);
  });
  const both = answers.every((r) => r.status === "fulfilled");
  const summary = both
    ? h("p", { class: "overlap", role: "status" }, `${shared.size} of the top ${k} in common (${a} vs ${b}).`)
    : null;
  container.replaceChildren(h("div", { class: "summary" }, summary), ...columns);
}
