// The JSON API, called with the key the user typed (kept in sessionStorage: gone with the tab).

const KEY = "embedswitch.apiKey";

// The API's root: the console is served at <root>/ui/, so a server behind a path prefix works.
export const ROOT = new URL("..", document.baseURI).pathname.replace(/\/$/, "");

export function apiKey() {
  return sessionStorage.getItem(KEY) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, code, message, call) {
    super(message);
    this.status = status;
    this.code = code;
    this.call = call;
  }

  toString() {
    return `${this.status} ${this.code}: ${this.message}`;
  }
}

export const enc = encodeURIComponent;

// Send one request; resolves to the answer's JSON, or throws an ApiError holding the server's
// ErrorBody ({code, message}).
export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(ROOT + path, init);
  } catch (err) {
    throw new ApiError(0, "unreachable", `the server did not answer (${err.message})`, { method, path });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const code = data?.code ?? "http_error";
    const message = data?.message ?? (text.slice(0, 300) || response.statusText);
    throw new ApiError(response.status, code, message, { method, path });
  }
  return data;
}

// What the request looks like on the wire, for the confirmation dialog.
export function describeCall(method, path, body) {
  const lines = [`${method} ${ROOT}${path}`];
  if (apiKey()) lines.push("Authorization: Bearer <your key>");
  if (body !== undefined) lines.push("Content-Type: application/json", "", JSON.stringify(body, null, 2));
  return lines.join("\n");
}

export function curl(method, path, body) {
  const url = new URL(ROOT + path, location.origin).href;
  const parts = ["curl", "-X", method];
  if (apiKey()) parts.push("-H", '"Authorization: Bearer $EMBEDSWITCH_API_KEY"');
  if (body !== undefined) parts.push("--json", `'${JSON.stringify(body).replaceAll("'", "'\\''")}'`);
  parts.push(`'${url}'`);
  return parts.join(" ");
}
