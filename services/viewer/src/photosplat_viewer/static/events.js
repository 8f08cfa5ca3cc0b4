// Follows a job's Server-Sent Events (GET /recon/jobs/{id}/events) and reconnects with
// Last-Event-ID as EventSource does. Not EventSource itself: it cannot send the Bearer token, and the
// token never travels in a URL (docs/architecture.md §6); fetch() reads the same stream with it.
import { noteServerDate } from "./api.js";

const MAX_FAILURES = 3;

const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

export class JobEvents {
  /**
   * onEvent(kind, data): each event ("state", "log", "curve", "final"; data parsed from JSON).
   * onUnavailable(): no stream to follow (no such route, refused, or failing): poll instead.
   */
  constructor(url, { token, onEvent, onUnavailable }) {
    this.url = url;
    this.token = token;
    this.onEvent = onEvent;
    this.onUnavailable = onUnavailable;
    this.lastEventId = null;
    this.retryMs = 1000;
    this.closed = false;
    this.abort = null;
  }

  start() {
    this.run();
  }

  close() {
    this.closed = true;
    if (this.abort) this.abort.abort();
  }

  async run() {
    let failures = 0;
    while (!this.closed) {
      let outcome;
      try {
        outcome = await this.connect();
        failures = 0;
      } catch (error) {
        if (this.closed) return;
        failures += 1;
        outcome = failures >= MAX_FAILURES ? "unavailable" : "again";
      }
      if (outcome === "ended" || this.closed) return;
      if (outcome === "unavailable") {
        this.closed = true;
        this.onUnavailable();
        return;
      }
      await sleep(this.retryMs);
    }
  }

  /** One connection: "ended" (final event, or 204), "again" (it closed early), "unavailable". */
  async connect() {
    this.abort = new AbortController();
    const headers = { Accept: "text/event-stream", Authorization: `Bearer ${this.token}` };
    if (this.lastEventId) headers["Last-Event-ID"] = this.lastEventId;
    const response = await fetch(this.url, { headers, cache: "no-store", signal: this.abort.signal });
    noteServerDate(response);
    if (response.status === 204) return "ended";
    if (response.status >= 500) throw new Error(`the server answered ${response.status}`);
    const type = response.headers.get("content-type") || "";
    if (!response.ok || !type.startsWith("text/event-stream")) return "unavailable";
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new EventParser((event) => this.dispatch(event));
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return "again";
      if (parser.feed(value)) {
        await reader.cancel();
        return "ended";
      }
    }
  }

  /** True for the final event. */
  dispatch({ kind, data, id, retry }) {
    if (retry != null) this.retryMs = retry;
    if (id != null) this.lastEventId = id;
    if (!kind) return false;
    this.onEvent(kind, JSON.parse(data));
    return kind === "final";
  }
}

/** The event-stream format, line by line (https://html.spec.whatwg.org/#event-stream-interpretation). */
class EventParser {
  constructor(dispatch) {
    this.dispatch = dispatch;
    this.buffer = "";
    this.reset();
  }

  reset() {
    this.event = { kind: "", data: [], id: null, retry: null };
  }

  /** Feeds decoded text; true once a dispatched event asked to stop. */
  feed(text) {
    this.buffer += text;
    const lines = this.buffer.split("\n");
    this.buffer = lines.pop();
    for (const raw of lines) {
      const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
      if (line === "") {
        const { kind, data, id, retry } = this.event;
        this.reset();
        if (this.dispatch({ kind: data.length ? kind : "", data: data.join("\n"), id, retry })) return true;
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "event") this.event.kind = value;
      else if (field === "data") this.event.data.push(value);
      else if (field === "id") this.event.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) this.event.retry = Number(value);
    }
    return false;
  }
}
