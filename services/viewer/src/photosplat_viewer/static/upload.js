// The upload page: pick or drop photos (or one video), check them here first (the same rules as
// the server), then declare them (POST /recon/uploads), PUT each one to its presigned URL and submit
// the job.
import { api, ApiError, el, fileErrors, formatBytes, getToken, setToken } from "./api.js";

// Mirrors ingest's settings (PHOTOSPLAT_INGEST_MAX_FILE_BYTES, MAX_VIDEO_BYTES, MIN_FILES,
// MAX_FILES): the server checks again (a video's codec, length and size too), this only spares the
// user a useless upload.
const EXTENSIONS = [".jpg", ".jpeg", ".png", ".webp"];
const VIDEO_EXTENSIONS = [".mp4", ".mov"];
const MAX_BYTES = 50 * 1024 * 1024;
const MAX_VIDEO_BYTES = 2 * 1024 * 1024 * 1024;
const MIN_FILES = 3;
const MAX_FILES = 1000;
const PARALLEL_UPLOADS = 3;

const $ = (id) => document.getElementById(id);
let accepted = [];
let busy = false;

function extensionOf(name) {
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
}

function isVideo(file) {
  return VIDEO_EXTENSIONS.includes(extensionOf(file.name));
}

function problemOf(file) {
  if (!EXTENSIONS.includes(extensionOf(file.name)) && !isVideo(file)) {
    return "not a JPEG, PNG or WebP photo or an MP4 or MOV video (allowed: .jpg, .jpeg, .png, .webp, .mp4, .mov)";
  }
  if (file.size === 0) return "the file is empty";
  if (isVideo(file) && file.size > MAX_VIDEO_BYTES) return `${formatBytes(file.size)} is larger than the 2 GiB limit for a video`;
  if (!isVideo(file) && file.size > MAX_BYTES) return `${formatBytes(file.size)} is larger than the 50 MiB limit`;
  return null;
}

/** What is wrong with the chosen set as a whole: photos, or one video alone. */
function countProblem(files) {
  const count = files.length;
  if (files.some(isVideo)) return count === 1 ? null : "a video is uploaded alone: choose one video, or photos only.";
  if (count < MIN_FILES) return `${count} photo(s) chosen: at least ${MIN_FILES} are needed (3D reconstruction needs several overlapping views).`;
  if (count > MAX_FILES) return `${count} photos chosen: at most ${MAX_FILES} are accepted.`;
  return null;
}

function describe(files) {
  if (files.length === 1 && isVideo(files[0])) return "1 video";
  return `${files.length} photo(s)`;
}

function showErrors(title, items = []) {
  const box = $("errors");
  box.replaceChildren(el("strong", title));
  if (items.length) {
    const list = el("ul");
    for (const item of items) {
      const who = item.file ? `${item.file}: ` : "";
      list.append(el("li", `${who}${item.message}${item.rule ? ` (rule: ${item.rule})` : ""}`));
    }
    box.append(list);
  }
  box.hidden = false;
}

function clearErrors() {
  $("errors").hidden = true;
  $("errors").replaceChildren();
}

function choose(files) {
  if (busy) return;
  clearErrors();
  const problems = [];
  accepted = [];
  for (const file of files) {
    const problem = problemOf(file);
    if (problem) problems.push({ file: file.webkitRelativePath || file.name, message: problem });
    else accepted.push(file);
  }
  const list = $("problems");
  list.replaceChildren(...problems.map((p) => el("li", `${p.file}: ${p.message} — skipped`)));
  const total = accepted.reduce((sum, f) => sum + f.size, 0);
  const count = countProblem(accepted);
  $("selection-summary").textContent = `${describe(accepted)} ready, ${formatBytes(total)}.` + (count ? ` ${count}` : "");
  $("selection-summary").classList.toggle("error", Boolean(count));
  $("upload-button").disabled = Boolean(count);
  $("selection").hidden = false;
}

// Dropped folders arrive as directory entries: walk them (readEntries answers in batches).
async function filesOfEntry(entry) {
  if (entry.isFile) return [await new Promise((resolve, reject) => entry.file(resolve, reject))];
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const files = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return files;
    for (const child of batch) files.push(...(await filesOfEntry(child)));
  }
}

async function droppedFiles(dataTransfer) {
  const entries = [...dataTransfer.items].map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (!entries.length) return [...dataTransfer.files];
  const nested = await Promise.all(entries.map(filesOfEntry));
  return nested.flat();
}

function progressRow(file) {
  const li = el("li");
  const bar = el("progress", null, { max: "100", value: "0", "aria-label": `Upload of ${file.name}` });
  const text = el("span", " waiting", { class: "muted" });
  li.append(el("span", `${file.name} `), bar, text);
  $("file-progress").append(li);
  return { li, bar, text, loaded: 0 };
}

function putFile(slot, file, row, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(slot.method || "PUT", slot.url);
    for (const [name, value] of Object.entries(slot.headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      row.loaded = event.loaded;
      row.bar.value = event.total ? (100 * event.loaded) / event.total : 0;
      onProgress();
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve();
      else reject(new Error(`the store answered ${xhr.status}`));
    });
    xhr.addEventListener("error", () => reject(new Error("the connection failed")));
    xhr.addEventListener("abort", () => reject(new Error("the upload was aborted")));
    xhr.send(file);
  });
}

async function uploadAll(declared, files) {
  const totalBytes = files.reduce((sum, f) => sum + f.size, 0) || 1;
  const rows = files.map(progressRow);
  const update = () => {
    const loaded = rows.reduce((sum, r) => sum + r.loaded, 0);
    $("total-progress").value = (100 * loaded) / totalBytes;
    const done = rows.filter((r) => r.done).length;
    $("total-text").textContent = `${done} of ${files.length} files uploaded (${formatBytes(loaded)} of ${formatBytes(totalBytes)})`;
  };

  const uploadOne = async (i) => {
    const row = rows[i];
    row.text.textContent = " uploading";
    row.li.classList.remove("failed");
    try {
      await putFile(declared.uploads[i], files[i], row, update);
      row.done = true;
      row.loaded = files[i].size;
      row.bar.value = 100;
      row.text.textContent = " done";
    } catch (error) {
      row.loaded = 0;
      row.bar.value = 0;
      row.li.classList.add("failed");
      row.text.textContent = ` failed: ${error.message} `;
      await new Promise((resolve) => {
        const retry = el("button", "Retry", { type: "button", class: "secondary" });
        retry.addEventListener("click", () => {
          retry.remove();
          resolve();
        });
        row.text.append(retry);
      });
      await uploadOne(i);
      return;
    }
    update();
  };

  let next = 0;
  const lane = async () => {
    while (next < files.length) await uploadOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, files.length) }, lane));
}

async function start(event) {
  event.preventDefault();
  if (busy || countProblem(accepted)) return;
  busy = true;
  clearErrors();
  $("upload-button").disabled = true;
  $("clear-button").disabled = true;
  const files = [...accepted];
  try {
    const declaration = {
      method: "POST",
      body: {
        files: files.map((f) => ({ name: f.name, size: f.size, content_type: f.type })),
        original_resolution: $("original-resolution").checked,
      },
    };
    let declared;
    try {
      declared = await api("/recon/uploads", declaration);
    } catch (error) {
      // A token the server no longer knows (every job under it deleted): start afresh with a new one.
      if (!(error instanceof ApiError && error.status === 401)) throw error;
      declared = await api("/recon/uploads", { ...declaration, token: null });
    }
    setToken(declared.token);
    $("progress-section").hidden = false;
    $("file-progress").replaceChildren();
    await uploadAll(declared, files);
    $("total-text").textContent = `${describe(files)} uploaded; checking on the server…`;
    await api(`/recon/jobs/${declared.job_id}/submit`, { method: "POST" });
    window.location.assign(`/jobs/${declared.job_id}`);
  } catch (error) {
    busy = false;
    $("clear-button").disabled = false;
    if (error instanceof ApiError && error.status === 400) {
      showErrors(`The server refused the photos: ${error.message}`, fileErrors(error));
    } else {
      showErrors(`The upload did not work: ${error.message}`);
    }
  }
}

async function showRecent() {
  if (!getToken()) return;
  try {
    const page = await api("/recon/jobs?limit=10");
    if (!page.items.length) return;
    const list = $("recent-list");
    list.replaceChildren(
      ...page.items.map((job) => {
        const li = el("li");
        li.append(el("a", new Date(job.created_at).toLocaleString(), { href: `/jobs/${job.job_id}` }));
        li.append(el("span", ` ${job.status.toLowerCase()}, ${job.image_count} photos`, { class: "muted" }));
        return li;
      }),
    );
    $("recent").hidden = false;
  } catch {
    // A stale token (its jobs deleted): nothing to list.
  }
}

function init() {
  const zone = $("drop-zone");
  $("file-input").addEventListener("change", (e) => choose([...e.target.files]));
  $("folder-input").addEventListener("change", (e) => choose([...e.target.files]));
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", async (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    choose(await droppedFiles(e.dataTransfer));
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      $("file-input").click();
    }
  });
  $("upload-form").addEventListener("submit", start);
  $("clear-button").addEventListener("click", () => {
    accepted = [];
    $("selection").hidden = true;
    $("file-input").value = "";
    $("folder-input").value = "";
    clearErrors();
  });
  showRecent();
}

init();
