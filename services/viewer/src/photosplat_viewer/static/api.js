// The client token and calls to the PhotoSplat API. The token is the browser's credential for its
// jobs: ingest hands it out with the first job and accepts it again for the next ones.
const TOKEN_KEY = "photosplat.token";
// A job in one of these states changes no more.
export const TERMINAL = new Set(["DONE", "FAILED", "CANCELLED"]);

export function getToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled (private mode settings): the user can paste the token
  }
}

export function setToken(token) {
  try {
    localStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Nothing to do: the job page will ask for the token.
  }
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(status, detail));
    this.status = status;
    this.detail = detail;
  }
}

function describeDetail(status, detail) {
  if (typeof detail === "string") return detail;
  if (detail && typeof detail.message === "string") return detail.message;
  return `the server answered ${status}`;
}

// The server's clock less this browser's, from the Date header of its answers (1 s resolution):
// times the server states (an ETA's eta_at) are compared with its clock, not a phone's.
let serverOffsetMs = 0;

/** Notes the server's time from an answer's Date header. */
export function noteServerDate(response) {
  const date = Date.parse(response.headers.get("Date") || "");
  if (!Number.isNaN(date)) serverOffsetMs = date - Date.now();
}

/** Now on the server's clock, in milliseconds. */
export function serverNow() {
  return Date.now() + serverOffsetMs;
}

/** fetch() JSON with the Bearer token; throws ApiError with the server's detail on a 4xx/5xx. */
export async function api(path, { method = "GET", body, token = getToken() } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  noteServerDate(response);
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) throw new ApiError(response.status, payload ? payload.detail : null);
  return payload;
}

/** The per-file problems of a 400 from ingest: [{file, rule, message}]. */
export function fileErrors(error) {
  const detail = error instanceof ApiError ? error.detail : null;
  return detail && Array.isArray(detail.errors) ? detail.errors : [];
}

export function formatBytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB"];
  let value = n / 1024;
  for (const unit of units) {
    if (value < 1024 || unit === "GiB") return `${value.toFixed(1)} ${unit}`;
    value /= 1024;
  }
  return `${n} B`;
}

export function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

/** A child element with text (never HTML: everything shown may quote user input). */
export function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}
