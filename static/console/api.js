// The API client: the staff member's tokens live in this module's memory only (never localStorage,
// sessionStorage or a cookie), the access token is refreshed before it expires and once more on a 401; when the
// refresh token is no good either, the page asks the person to sign in again and then sends the request again,
// so a form that was being filled in keeps what was typed.

export const BASE = "/api/v1";
const STAFF = new Set(["marketer", "admin"]);

let session = null; // {access, refresh, expiresAt (ms), role, email}
let lastEmail = ""; // offered again when a session ends
let refreshing = null; // one refresh at a time
let timer = null;
let reauthenticate = null; // () => Promise<void>, set by the app: the sign-in dialog
const listeners = new Set();

/** An answer that was not 2xx: the API's problem+json (status, code, detail, errors). */
export class Problem extends Error {
  constructor(status, body) {
    const detail = (body && typeof body.detail === "string" && body.detail) || `The server answered ${status}.`;
    super(detail);
    this.status = status;
    this.code = (body && body.code) || "http_error";
    this.title = (body && body.title) || "";
    this.detail = detail;
    this.errors = (body && typeof body.errors === "object" && body.errors) || {};
  }
}

/** A 404 from a route the server does not have (yet): werkzeug's answer, not a domain "no such ..." */
export function isMissingRoute(error) {
  return error instanceof Problem && error.status === 404
    && (error.title === "Not Found" || /requested URL was not found/i.test(error.detail));
}

export function signedIn() { return session !== null; }
export function role() { return session ? session.role : null; }
export function email() { return session ? session.email : lastEmail; }
export function onReauthenticate(fn) { reauthenticate = fn; }
export function onChange(fn) { listeners.add(fn); }
function changed() { for (const fn of listeners) fn(session); }

async function tokenRequest(body) {
  let response;
  try {
    response = await fetch(BASE + "/auth/token", {
      method: "POST", headers: {"Content-Type": "application/json", Accept: "application/json"},
      body: JSON.stringify(body), credentials: "omit", cache: "no-store",
    });
  } catch (err) {
    throw new Problem(0, {detail: "The server could not be reached.", code: "network_error"});
  }
  const data = await readBody(response);
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

function keep(data, emailAddress) {
  if (!STAFF.has(data.role)) {
    throw new Problem(403, {code: "forbidden", detail: "This console is for marketers and admins; this account's role is "
      + String(data.role) + "."});
  }
  session = {
    access: data.access_token, refresh: data.refresh_token, role: data.role,
    email: emailAddress || (session && session.email) || lastEmail,
    expiresAt: Date.now() + Math.max(10, Number(data.expires_in) || 900) * 1000,
  };
  lastEmail = session.email;
  clearTimeout(timer);
  // refresh a minute before expiry (or at 80% of a short lifetime)
  const lifetime = session.expiresAt - Date.now();
  timer = setTimeout(() => { refresh().catch(() => {}); }, Math.max(5000, Math.min(lifetime - 60000, lifetime * 0.8)));
  changed();
}

export async function signIn(emailAddress, password) {
  const data = await tokenRequest({email: emailAddress, password});
  keep(data, emailAddress);
}

export function signOut() {
  const ended = session;
  session = null;
  lastEmail = "";
  clearTimeout(timer);
  changed();
  if (ended) {
    // revoke the refresh chain where the server can (API.md, "Sessions"); the tokens are forgotten here anyway
    fetch(BASE + "/auth/logout", {method: "POST", headers: {Authorization: "Bearer " + ended.access},
      credentials: "omit"}).catch(() => {});
  }
}

/** Trade the refresh token for new tokens; false when it is no good (then the person signs in again). */
export async function refresh() {
  if (!session) return false;
  if (!refreshing) {
    const used = session.refresh;
    refreshing = tokenRequest({refresh_token: used}).then((data) => { keep(data); return true; },
      () => false).finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function readBody(response) {
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("json")) {
    try { return await response.json(); } catch (err) { return null; }
  }
  return await response.text();
}

function url(path, query) {
  const u = new URL(BASE + path, window.location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === "") continue;
    if (Array.isArray(v)) v.forEach((one) => u.searchParams.append(k, one));
    else u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

/**
 * One API call. `body` is sent as JSON unless it is FormData or `raw` (then as it is, with `contentType`).
 * Resolves to the parsed answer; rejects with a Problem carrying the API's detail.
 */
export async function request(method, path, {body, query, headers = {}, idempotencyKey} = {}) {
  if (!session) await needSignIn();
  if (session.expiresAt - Date.now() < 20000 && !(await refresh())) await needSignIn(); // expiring: renew first
  const send = async () => {
    const h = {Accept: "application/json", ...headers, Authorization: "Bearer " + session.access};
    let payload;
    if (body instanceof FormData || body instanceof Blob) payload = body;
    else if (body !== undefined) { payload = JSON.stringify(body); h["Content-Type"] = "application/json"; }
    if (idempotencyKey) h["Idempotency-Key"] = idempotencyKey;
    try {
      return await fetch(url(path, query), {method, headers: h, body: payload, credentials: "omit",
        cache: "no-store"});
    } catch (err) {
      throw new Problem(0, {detail: "The server could not be reached; nothing was sent. Try again.",
        code: "network_error"});
    }
  };
  let response = await send();
  if (response.status === 401) {
    if (!(await refresh())) await needSignIn();
    response = await send();
  }
  const data = await readBody(response);
  if (!response.ok) throw new Problem(response.status, typeof data === "object" ? data : {detail: String(data || "")});
  return data;
}

async function needSignIn() {
  session = null;
  changed();
  if (!reauthenticate) throw new Problem(401, {code: "unauthorized", detail: "Sign in first."});
  await reauthenticate(); // resolves once signed in again; rejects if the person gives up
}

export const get = (path, query) => request("GET", path, {query});
export const post = (path, body, options = {}) => request("POST", path, {body, ...options});
export const patch = (path, body) => request("PATCH", path, {body});
export const del = (path) => request("DELETE", path);

/** A fresh key for one submission of a form (kept while the same values are retried). */
export function newKey() {
  if (window.crypto && crypto.randomUUID) return "console-" + crypto.randomUUID();
  return "console-" + Date.now().toString(36) + Math.random().toString(36).slice(2);
}
