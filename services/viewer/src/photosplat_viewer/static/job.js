// The owner's job page: shows everything the API knows about the job. It follows the job's event
// stream (state, log lines, curve points, the end) and reads the whole status again when the stage
// or status changes; without the stream it polls the status API every 2 s until the job ends.
// Cancel and delete use the owner's token.
import { api, ApiError, el, formatBytes, formatDuration, getToken, setToken, TERMINAL } from "./api.js";
import { ProgressText } from "./progress_text.js";
import { drawCurve } from "./curve.js";
import { JobEvents } from "./events.js";

const POLL_MS = 2000;
// Log lines the page keeps from the stream.
const LOG_LINES = 200;
const STAGES = {
  upload: "Waiting for the photos",
  validate: "Checking the photos",
  sfm: "Finding where each photo was taken (structure from motion)",
  train: "Training the 3D scene",
  export: "Exporting the scene",
};
const STATUS_TEXT = {
  PENDING: "Queued",
  RUNNING: "Running",
  DONE: "Ready",
  FAILED: "Failed",
  CANCELLED: "Cancelled",
};

// The timings of the status API (stats.sfm.timings: SfM steps; stats.timings: the trainer's) as
// people read them; a step that did not run is null.
const TIME_LABELS = {
  capture: "photo check",
  extraction: "feature extraction",
  matching: "matching",
  mapping: "mapping",
  undistortion: "undistortion",
  known_poses: "reading the cameras",
  download_seconds: "trainer download",
  train_seconds: "training",
  gpu_seconds: "GPU training",
  train_stage_seconds: "training stage (with exports)",
  upload_seconds: "upload of results",
  total_seconds: "trainer total",
};

const $ = (id) => document.getElementById(id);
const jobId = $("job").dataset.jobId;
let timer = null;
let stream = null;
let job = null;
let streamedLog = [];
let shownFilesFor = null;
let errorsShown = 0;
const progressText = new ProgressText($("progress-text"));

function fail(message) {
  $("job-error").textContent = message;
  $("job-error").hidden = false;
}

function row(name, value) {
  const tr = el("tr");
  tr.append(el("th", name, { scope: "row" }), el("td", value));
  return tr;
}

function statRows(job) {
  const rows = [];
  if (job.registered_image_count != null) rows.push(row("Photos registered", `${job.registered_image_count} of ${job.image_count}`));
  else rows.push(row("Photos", String(job.image_count)));
  const sfm = job.stats.sfm || {};
  if (sfm.points != null) rows.push(row("3D points (SfM)", sfm.points.toLocaleString()));
  if (typeof sfm.reprojection_error === "number") rows.push(row("Reprojection error", `${sfm.reprojection_error.toFixed(2)} px`));
  if (job.gaussian_count != null) rows.push(row("Gaussians", job.gaussian_count.toLocaleString()));
  for (const [format, bytes] of Object.entries(job.file_sizes || {})) rows.push(row(`${format} file`, formatBytes(bytes)));
  if (typeof job.metrics.psnr === "number") rows.push(row("Held-out PSNR", `${job.metrics.psnr.toFixed(2)} dB`));
  if (typeof job.metrics.ssim === "number") rows.push(row("Held-out SSIM", job.metrics.ssim.toFixed(3)));
  const timings = { ...(sfm.timings || {}), ...(job.stats.timings || {}) };
  for (const [step, seconds] of Object.entries(timings)) {
    if (typeof seconds === "number") rows.push(row(`Time: ${TIME_LABELS[step] || step}`, formatDuration(seconds)));
  }
  if (job.processing_time_seconds != null) rows.push(row("Total processing time", formatDuration(job.processing_time_seconds)));
  if (job.attempt > 1) rows.push(row("Attempt", String(job.attempt)));
  return rows;
}

function showWarnings(job) {
  const warnings = (job.stats.sfm && job.stats.sfm.warnings) || [];
  $("warnings").hidden = !warnings.length;
  $("warning-list").replaceChildren(...warnings.map((w) => el("li", typeof w === "string" ? w : JSON.stringify(w))));
}

function showCurve(job) {
  const points = job.stats.curve || [];
  const drawn = drawCurve($("curve"), points);
  const last = points[points.length - 1];
  if (!drawn || !last) {
    $("curve-caption").textContent = "No training data yet.";
    return;
  }
  const parts = [`step ${last.step}`];
  if (typeof last.loss === "number") parts.push(`loss ${last.loss.toPrecision(3)}`);
  if (typeof last.psnr === "number") parts.push(`PSNR ${last.psnr.toFixed(2)} dB`);
  $("curve-caption").textContent = `Latest: ${parts.join(", ")} (${points.length} points).`;
}

async function showDownloads(job) {
  if (job.status !== "DONE" || !job.viewer_url || shownFilesFor === job.viewer_url) return;
  shownFilesFor = job.viewer_url;
  const viewerPath = new URL(job.viewer_url, window.location.href).pathname;
  $("viewer-link").href = viewerPath;
  $("viewer-link").hidden = false;
  try {
    const manifest = await api(`${viewerPath}/files.json`, { token: null });
    $("download-list").replaceChildren(
      ...manifest.files.map((f) => {
        const li = el("li");
        li.append(el("a", f.filename, { href: f.href, download: "" }), el("span", ` ${f.format}, ${formatBytes(f.bytes)}`, { class: "muted" }));
        return li;
      }),
    );
    $("downloads").hidden = !manifest.files.length;
  } catch (error) {
    fail(`The downloads could not be listed: ${error.message}`);
  }
}

async function showErrors(job) {
  if (job.status !== "FAILED" && job.attempt <= 1) return;
  const errors = await api(`/recon/jobs/${jobId}/errors`);
  if (errors.length === errorsShown) return;
  errorsShown = errors.length;
  $("error-list").replaceChildren(
    ...errors.map((e) => {
      const li = el("li");
      const outcome = e.final ? "" : " — retried";
      li.append(el("strong", `${e.stage} (attempt ${e.attempt}${outcome}): `), el("span", e.message));
      if (e.traceback) {
        const details = el("details");
        details.append(el("summary", `Technical details (${e.error_type})`), el("pre", e.traceback));
        li.append(details);
      }
      return li;
    }),
  );
  $("errors-section").hidden = !errors.length;
}

function render(job) {
  $("status-section").hidden = false;
  const badge = $("status-badge");
  badge.textContent = STATUS_TEXT[job.status] || job.status;
  badge.className = `badge ${job.status}`;
  $("stage-label").textContent = job.status === "DONE" ? "Your scene is ready" : STAGES[job.stage] || job.stage;
  const percent = Math.round(job.overall_progress * 100);
  $("overall-progress").value = percent;
  progressText.show(job);
  document.title = `${STATUS_TEXT[job.status] || job.status} ${percent} % · PhotoSplat`;

  $("failure").hidden = job.status !== "FAILED";
  if (job.status === "FAILED") {
    $("failure").textContent = `It failed during the ${job.error_stage || "?"} stage: ${job.error || "no reason was given"}. ` +
      "Photos with more overlap, sharper focus and a textured subject usually help.";
  }
  $("cancel-button").hidden = TERMINAL.has(job.status);
  $("stats").tBodies[0].replaceChildren(...statRows(job));
  showLog(job);
  showWarnings(job);
  showCurve(job);
}

function showLog(job) {
  const lines = streamedLog.length ? streamedLog.map((l) => l.line) : job.log_tail;
  $("log-tail").textContent = lines.join("\n") || "(nothing logged yet)";
}

/** Reads the whole status once and shows it: the job, or null when it is not ours (or gone). */
async function refresh() {
  try {
    job = await api(`/recon/jobs/${jobId}/status`);
    $("job-error").hidden = true;
    render(job);
    await Promise.all([showDownloads(job), showErrors(job)]);
    return job;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 404)) {
      stop();
      fail(error.status === 404
        ? "No job with this id belongs to this browser's token (it may have been deleted)."
        : "This browser has no valid token for this job.");
      $("no-token").hidden = false;
      return null;
    }
    fail(`Could not reach the server (${error.message}); trying again…`);
    return undefined;
  }
}

async function poll() {
  const current = await refresh();
  if (current === null || (current && TERMINAL.has(current.status))) return;
  timer = window.setTimeout(poll, POLL_MS);
}

function onEvent(kind, data) {
  if (kind === "log") {
    streamedLog = [...streamedLog, ...data.lines].slice(-LOG_LINES);
    if (job) showLog(job);
  } else if (kind === "curve" && job) {
    const kept = data.reset || !data.points.length ? [] : job.stats.curve.filter((p) => p.step < data.points[0].step);
    job.stats.curve = [...kept, ...data.points];
    showCurve(job);
  } else if (kind === "state" && job) {
    const moved = data.status !== job.status || data.stage !== job.stage || data.attempt !== job.attempt;
    const { latest, ...fields } = data;
    Object.assign(job, fields);
    job.stats.latest = latest;
    // A new stage brings figures the stream does not carry (SfM statistics, errors): read them.
    if (moved) refresh();
    else render(job);
  } else if (kind === "final") {
    refresh();
  }
}

/** Follows the job's events; falls back to polling when the server offers no stream. */
function follow() {
  $("job").dataset.transport = "stream";
  stream = new JobEvents(`/recon/jobs/${jobId}/events`, {
    token: getToken(),
    onEvent,
    onUnavailable: () => {
      stream = null;
      $("job").dataset.transport = "polling";
      poll();
    },
  });
  stream.start();
}

async function start() {
  stop();
  const current = await refresh();
  if (current === null || (current && TERMINAL.has(current.status))) return;
  if (typeof ReadableStream === "undefined" || typeof TextDecoderStream === "undefined") {
    $("job").dataset.transport = "polling";
    timer = window.setTimeout(poll, POLL_MS);
    return;
  }
  follow();
}

function stop() {
  window.clearTimeout(timer);
  progressText.stop();
  if (stream) stream.close();
  stream = null;
}

async function cancel() {
  if (!window.confirm("Stop this job? It cannot be resumed.")) return;
  try {
    await api(`/recon/jobs/${jobId}/cancel`, { method: "POST" });
  } catch (error) {
    fail(`Cancel did not work: ${error.message}`);
  }
  // The stream brings the end as well; reading it now shows it at once.
  refresh();
}

async function remove() {
  if (!window.confirm("Delete this job with its photos and scene? This cannot be undone.")) return;
  try {
    await api(`/recon/jobs/${jobId}`, { method: "DELETE" });
  } catch (error) {
    fail(`Delete did not work: ${error.message}`);
    return;
  }
  stop();
  $("status-section").hidden = true;
  $("deleted").hidden = false;
}

function init() {
  $("cancel-button").addEventListener("click", cancel);
  $("delete-button").addEventListener("click", remove);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken($("token-input").value.trim());
    $("no-token").hidden = true;
    start();
  });
  if (!getToken()) {
    $("no-token").hidden = false;
    return;
  }
  start();
}

init();
