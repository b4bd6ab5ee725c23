// Building the page from data: elements made with text, never parsed HTML, so no name, text or
// error message from the server can inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// Replace a container's content, keeping the keyboard focus on the element of the same data-key
// (a poll re-renders a table under the user's focus).
export function replace(container, ...nodes) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : undefined;
  container.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== null && n !== undefined));
  if (key) container.querySelector(`[data-key="${CSS.escape(key)}"]`)?.focus();
}

export function bytes(n) {
  if (!n) return "0 B";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
  return `${(n / 1024 ** i).toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "—";
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

export function clock(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleTimeString([], { hour12: false });
}

export function when(unixSeconds) {
  const d = new Date(unixSeconds * 1000);
  const today = new Date().toDateString() === d.toDateString();
  return today ? clock(unixSeconds) : d.toLocaleString([], { hour12: false });
}

export function num(x, digits = 0) {
  if (x === null || x === undefined) return "—";
  return Number(x).toLocaleString([], { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function pct(x, digits = 1) {
  return x === null || x === undefined ? "—" : `${(x * 100).toFixed(digits)}%`;
}

export function compact(value) {
  return JSON.stringify(value);
}

// One color per version, stable across charts: by the version's position in the collection.
const PALETTE = ["#2457c5", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285", "#5c940d", "#e67700"];

export function colorOf(names, name) {
  const i = names.indexOf(name);
  return i < 0 ? "#868e96" : PALETTE[i % PALETTE.length];
}
