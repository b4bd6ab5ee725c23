// The console: polls the API every POLL_MS while live, renders what changed, and wires the forms.

import { act } from "./actions.js";
import { apiKey, call, enc, setApiKey } from "./api.js";
import { compact, h, replace } from "./dom.js";
import { evaluationView, experimentView, rolloutsView } from "./panels.js";
import { sideBySide } from "./search.js";
import { charts, collectionItem, eventsTable, sliders, trafficView, versionsTable } from "./views.js";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

const state = {
  current: new URLSearchParams(location.hash.slice(1)).get("c"),
  info: null,
  draft: {}, // slider weights being edited
  dirty: false, // the sliders differ from the server's weights: polls leave them alone
  shown: {}, // section -> JSON last rendered, so an unchanged section keeps its DOM and focus
  evaluations: [],
  timer: null,
};

const base = () => `/v1/collections/${enc(state.current)}`;

function problem(message) {
  const box = $("problem");
  box.hidden = !message;
  box.textContent = message || "";
}

function show(section, data, render) {
  const json = compact(data);
  if (state.shown[section] === json) return;
  state.shown[section] = json;
  replace($(section), render(data));
}

function select(name) {
  state.current = name;
  state.info = null;
  state.shown = {};
  state.dirty = false;
  state.evaluations = JSON.parse(sessionStorage.getItem(`embedswitch.evaluations.${name}`) || "[]");
  history.replaceState(null, "", `#c=${enc(name)}`);
  $("search-results").replaceChildren();
  refresh().then(() => $("main").focus());
}

function renderCollections(list) {
  if (state.current && !list.some((c) => c.name === state.current)) state.current = null;
  if (!state.current && list.length) state.current = list[0].name;
  show("collections", list.map((c) => [c, c.name === state.current]), () =>
    list.length ? list.map((c) => collectionItem(c, state.current, select)) : [h("li", { class: "muted" }, "No collections.")],
  );
}

function versionOptions(select_, names, keep) {
  const before = select_.value;
  const json = compact(names);
  if (select_.dataset.options === json) return;
  select_.dataset.options = json;
  select_.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  select_.value = names.includes(before) ? before : keep(names);
}

function renderCollection(info) {
  state.info = info;
  const names = info.versions.map((v) => v.name);
  $("empty").hidden = true;
  $("collection").hidden = false;
  $("title").textContent = info.name;
  $("summary").textContent = `${info.records.toLocaleString()} records · head seq ${info.head_seq.toLocaleString()} · ${names.length} versions`;
  show("versions", info, () => versionsTable(info, { promote, retire }));
  if (!state.dirty) state.draft = Object.fromEntries(info.versions.map((v) => [v.name, v.weight]));
  show("sliders", [info.versions.map((v) => [v.name, v.state]), state.dirty ? "editing" : state.draft], () =>
    sliders(info, state.draft, (name, value) => {
      state.draft[name] = value;
      state.dirty = true;
    }),
  );
  const live = () => Object.entries(info.traffic).sort((a, b) => b[1] - a[1])[0]?.[0] ?? names[0];
  const candidate = (list) => list.find((n) => !info.traffic[n]) ?? list[list.length - 1];
  versionOptions($("search-a"), names, live);
  versionOptions($("search-b"), names, candidate);
  versionOptions($("rollout-to"), names, candidate);
  versionOptions($("eval-version"), names, candidate);
}

async function section(id, path, render) {
  try {
    const data = await call("GET", path);
    show(id, data, render);
    return data;
  } catch (err) {
    show(id, { error: err.toString() }, () => h("p", { class: "error" }, err.toString()));
    return null;
  }
}

async function refresh() {
  try {
    renderCollections(await call("GET", "/v1/collections"));
  } catch (err) {
    problem(err.status === 401 ? `${err.message} (type a key above)` : err.toString());
    $("updated").textContent = "not updated";
    return;
  }
  problem("");
  if (!state.current) {
    $("collection").hidden = true;
    $("empty").hidden = false;
    return;
  }
  try {
    renderCollection(await call("GET", base()));
  } catch (err) {
    problem(err.toString());
    return;
  }
  const names = state.info.versions.map((v) => v.name);
  await Promise.all([
    section("traffic-timeline", `${base()}/traffic`, (t) => trafficView(t, names, Date.now() / 1000)),
    section("charts", `${base()}/stats`, (st) => charts(st, names)),
    section("experiment", `${base()}/experiment`, (r) => experimentView(r, names)),
    section("rollouts", `${base()}/rollouts`, (list) => rolloutsView(list, stopRollout)),
    section("events", `${base()}/events`, eventsTable),
  ]);
  show("evaluation", state.evaluations, (list) => list.map(evaluationView));
  $("updated").textContent = `updated ${new Date().toLocaleTimeString([], { hour12: false })}`;
}

function schedule() {
  clearTimeout(state.timer);
  if (!$("live").checked) return;
  state.timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, POLL_MS);
}

async function acted(answer) {
  if (answer !== null) {
    state.dirty = false;
    await refresh();
  }
  return answer;
}

const promote = (v) => act(`Give ${v} all the traffic of ${state.current}.`, "POST", `${base()}/versions/${enc(v)}/promote`, {}).then(acted);
const retire = (v) => act(`Retire ${v}: its index is deleted; it must have no traffic.`, "DELETE", `${base()}/versions/${enc(v)}`).then(acted);
const stopRollout = (id) => act(`Stop rollout #${id}; the live version gets all traffic back.`, "POST", `${base()}/rollouts/${id}/stop`, {}).then(acted);

function remember(what, result) {
  state.evaluations = [{ what, at: Date.now() / 1000, result }, ...state.evaluations].slice(0, 5);
  sessionStorage.setItem(`embedswitch.evaluations.${state.current}`, JSON.stringify(state.evaluations));
  show("evaluation", state.evaluations, (list) => list.map(evaluationView));
}

function numbers(text) {
  return text.split(/[\s,]+/).filter(Boolean).map(Number);
}

function wire() {
  $("api-key").value = apiKey();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey($("api-key").value.trim());
    state.shown = {};
    refresh();
  });
  $("forget-key").addEventListener("click", () => {
    setApiKey("");
    $("api-key").value = "";
    state.shown = {};
    refresh();
  });
  $("live").addEventListener("change", () => (schedule(), $("live").checked && refresh()));
  $("traffic-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const weights = { ...state.draft };
    act(`Set the traffic weights of ${state.current}.`, "PUT", `${base()}/traffic`, { weights }).then(acted);
  });
  $("reset-weights").addEventListener("click", () => {
    state.dirty = false;
    state.shown.sliders = null;
    if (state.info) renderCollection(state.info);
  });
  $("rollback").addEventListener("click", () => act(`Restore the weights of ${state.current} before the last change.`, "POST", `${base()}/rollback`, {}).then(acted));
  $("add-version").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const text = String(form.get("model")).trim();
    let model = text;
    try {
      if (text.startsWith("{")) model = JSON.parse(text);
    } catch (err) {
      problem(`the model spec is not JSON: ${err.message}`);
      return;
    }
    const body = { name: String(form.get("name")), model };
    if (form.get("index")) body.index = { type: String(form.get("index")) };
    act(`Add version ${body.name} to ${state.current}; it backfills in the background and gets no traffic.`, "POST", `${base()}/versions`, body).then(acted);
  });
  $("rollout-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const body = {
      to: String(form.get("to")),
      steps: numbers(String(form.get("steps"))),
      min_requests: Number(form.get("min_requests")),
      step_interval_s: Number(form.get("step_interval_s")),
      gates: { max_error_rate: Number(form.get("max_error_rate")) },
    };
    act(`Start a gated rollout of ${state.current} to ${body.to}.`, "POST", `${base()}/rollouts`, body).then(acted);
  });
  $("eval-candidate").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    const v = String(form.get("candidate"));
    const answer = await act(`Compare ${v} with the live version on logged queries (needs the query log).`, "POST", `${base()}/versions/${enc(v)}/evaluate`, { sample: Number(form.get("sample")) });
    if (answer) remember(`${v} on logged queries`, answer);
  });
  $("eval-judged").addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try {
      body = JSON.parse(new FormData(event.target).get("body"));
    } catch (err) {
      problem(`the evaluation body is not JSON: ${err.message}`);
      return;
    }
    if (Array.isArray(body.versions) && !body.versions.length) body.versions = state.info.versions.map((v) => v.name);
    const answer = await act(`Score versions of ${state.current} on judged queries.`, "POST", `${base()}/evaluate`, body);
    if (answer) remember("judged queries", answer);
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    sideBySide($("search-results"), base(), {
      text: String(form.get("text")),
      k: Number(form.get("k")),
      kind: String(form.get("kind")) || "doc",
      a: String(form.get("a")),
      b: String(form.get("b")),
    });
  });
  document.addEventListener("keydown", (event) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName ?? "");
    if (event.key === "/" && !typing && !$("confirm").open) {
      event.preventDefault();
      $("search-text").focus();
    }
  });
  $("collections").addEventListener("keydown", (event) => {
    const buttons = [...$("collections").querySelectorAll("button")];
    const at = buttons.indexOf(document.activeElement);
    const step = { ArrowDown: 1, ArrowUp: -1 }[event.key];
    if (at < 0 || !step) return;
    event.preventDefault();
    buttons[(at + step + buttons.length) % buttons.length].focus();
  });
  document.addEventListener("visibilitychange", () => !document.hidden && refresh());
}

wire();
refresh().then(schedule);
