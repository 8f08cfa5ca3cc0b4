// The 3D viewer of /v/{pub_key}: Spark (Gaussian splats for three.js) renders the scene file the
// page names. Orbit and fly controls, a loading bar, a splat budget for phones, a copy-link button.
import * as THREE from "three";
import { FlyControls } from "three/addons/controls/FlyControls.js";
import { OrbitControls } from "three/addons/controls/OrbitControls.js";
import { isMobile, SparkRenderer, SplatMesh } from "@sparkjsdev/spark";
import { choose, sparkFileType } from "./scene_choice.js";

const BACKGROUND = 0x15191e;
const FOV = 50;
// Splats a device is asked to draw at most. A phone's GPU and memory hold far fewer than a
// desktop's; `?budget=N` overrides. Over budget, a scene with only a .splat (no SOG or SPZ) is
// loaded up to its first N splats, which the trainer writes most important first (a range request).
const BUDGET = { mobile: 500_000, desktop: 4_000_000 };
const SPLAT_RECORD_BYTES = 32;
// Trainer PLY, .splat and SOG are in COLMAP's frame (y down, z forward): SOG is stored in the PLY's
// frame, as PlayCanvas writes it and Spark reads it. SPZ is y-up by its spec.
const Y_DOWN_FORMATS = new Set(["ply", "splat", "sog"]);

const $ = (id) => document.getElementById(id);
const root = $("viewer");
const scene = JSON.parse($("scene-data").textContent);
const params = new URLSearchParams(window.location.search);

function setState(state, message) {
  root.dataset.state = state;
  if (message) $("loading").replaceChildren(document.createTextNode(message));
}

async function download(url, maxBytes, onProgress) {
  const headers = maxBytes ? { Range: `bytes=0-${maxBytes - 1}` } : {};
  const response = await fetch(url, { headers });
  if (!response.ok) throw new Error(`the scene file answered ${response.status}`);
  const total = Number(response.headers.get("Content-Length")) || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    onProgress(total ? received / total : null);
  }
  const bytes = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.floor(q * (sorted.length - 1))))];
}

/** The middle 96 % of the splat centres in world space: floaters do not push the camera away. */
function robustBounds(mesh) {
  const xs = [];
  const ys = [];
  const zs = [];
  const p = new THREE.Vector3();
  mesh.updateMatrixWorld(true);
  mesh.forEachSplat((_, center) => {
    p.copy(center).applyMatrix4(mesh.matrixWorld);
    xs.push(p.x);
    ys.push(p.y);
    zs.push(p.z);
  });
  const box = new THREE.Box3();
  if (!xs.length) return box.setFromCenterAndSize(new THREE.Vector3(), new THREE.Vector3(2, 2, 2));
  const sorted = [xs, ys, zs].map((a) => Float64Array.from(a).sort());
  box.min.set(...sorted.map((a) => quantile(a, 0.02)));
  box.max.set(...sorted.map((a) => quantile(a, 0.98)));
  return box;
}

/** The trainer's home view: the photographer's own camera of the thumbnail. Its frame is COLMAP's
 * (y down, z forward), which the world shows turned 180° about x, as it shows the scene. */
function captureView(camera, home) {
  const toWorld = ([x, y, z]) => new THREE.Vector3(x, -y, -z);
  const center = toWorld(home.target);
  camera.fov = home.fov_y_deg;
  camera.position.copy(toWorld(home.position));
  camera.up.copy(toWorld(home.up));
  const distance = Math.max(camera.position.distanceTo(center), 1e-3);
  camera.near = distance / 1000;
  camera.far = distance * 1000;
  camera.lookAt(center);
  camera.updateProjectionMatrix();
  return { center, radius: distance / 2 };
}

// `box`: the splats' robust bounds (computed once: they walk every splat), or null with a capture view.
function homeView(camera, box) {
  if (scene.home) return captureView(camera, scene.home);
  camera.fov = FOV;
  const center = box.getCenter(new THREE.Vector3());
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1e-3);
  const distance = (radius / Math.sin(THREE.MathUtils.degToRad(camera.fov) / 2)) * 1.05;
  camera.near = distance / 1000;
  camera.far = distance * 100;
  camera.position.set(center.x, center.y, center.z + distance);
  camera.up.set(0, 1, 0);
  camera.lookAt(center);
  camera.updateProjectionMatrix();
  return { center, radius };
}

async function copyLink() {
  const status = $("copy-status");
  try {
    await navigator.clipboard.writeText(scene.shareUrl);
    status.textContent = "Link copied.";
  } catch {
    // No clipboard permission (or an insecure origin): select the link for a manual copy.
    const range = document.createRange();
    range.selectNodeContents($("share-url"));
    window.getSelection().removeAllRanges();
    window.getSelection().addRange(range);
    status.textContent = "Press Ctrl+C (⌘C) to copy the selected link.";
  }
}

async function main() {
  const mobile = isMobile();
  const budget = Number(params.get("budget")) || (mobile ? BUDGET.mobile : BUDGET.desktop);
  const choice = choose(scene.files, scene.gaussians, budget, params.get("format"));
  if (!choice) {
    setState("error", "This scene has no file the viewer can show.");
    return;
  }

  const container = $("viewer-canvas");
  const renderer = new THREE.WebGLRenderer({ antialias: false });
  renderer.setPixelRatio(Math.min(window.devicePixelRatio, mobile ? 1.5 : 2));
  renderer.setClearColor(BACKGROUND, 1);
  container.append(renderer.domElement);
  const camera = new THREE.PerspectiveCamera(FOV, 1, 0.01, 1000);
  const world = new THREE.Scene();
  let dirty = true;
  const spark = new SparkRenderer({ renderer, onDirty: () => (dirty = true) });
  world.add(spark);

  const resize = () => {
    const { clientWidth: w, clientHeight: h } = container;
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
    dirty = true;
  };
  new ResizeObserver(resize).observe(container);
  resize();

  const bar = $("load-progress");
  const maxBytes = choice.splats && choice.file.format === "splat" ? choice.splats * SPLAT_RECORD_BYTES : null;
  const bytes = await download(choice.file.href, maxBytes, (fraction) => {
    if (fraction == null) bar.removeAttribute("value");
    else bar.value = Math.round(fraction * 100);
  });
  const mesh = new SplatMesh({ fileBytes: bytes, fileType: sparkFileType(choice.file.format), fileName: choice.file.filename });
  if (Y_DOWN_FORMATS.has(choice.file.format)) mesh.quaternion.set(1, 0, 0, 0); // 180° about x
  world.add(mesh);
  await mesh.initialized;

  const bounds = scene.home ? null : robustBounds(mesh);
  let home = homeView(camera, bounds);
  const orbit = new OrbitControls(camera, renderer.domElement);
  orbit.target.copy(home.center);
  orbit.enableDamping = true;
  orbit.update();
  orbit.addEventListener("change", () => (dirty = true));
  let fly = null;
  const clock = new THREE.Clock();

  const setFly = (on) => {
    $("mode-button").setAttribute("aria-pressed", String(on));
    $("mode-button").textContent = on ? "Orbit mode" : "Fly mode";
    if (on) {
      orbit.enabled = false;
      fly = new FlyControls(camera, renderer.domElement);
      fly.dragToLook = true;
      fly.movementSpeed = home.radius * 0.6;
      fly.rollSpeed = 0.6;
      return;
    }
    fly.dispose();
    fly = null;
    // Orbit again about the point the camera now looks at, as far away as the old target was.
    const ahead = new THREE.Vector3(0, 0, -1).applyQuaternion(camera.quaternion);
    orbit.target.copy(camera.position).addScaledVector(ahead, camera.position.distanceTo(orbit.target));
    orbit.enabled = true;
    orbit.update();
  };
  $("mode-button").addEventListener("click", () => setFly(!fly));
  $("reset-button").addEventListener("click", () => {
    if (fly) setFly(false);
    home = homeView(camera, bounds);
    orbit.target.copy(home.center);
    orbit.update();
    dirty = true;
  });

  // The view a test (or a bug report) can reproduce: camera pose, vertical FOV, canvas aspect.
  root.dataset.camera = JSON.stringify({
    position: camera.position.toArray(),
    target: home.center.toArray(),
    fov: camera.fov,
    aspect: camera.aspect,
    flipped: Y_DOWN_FORMATS.has(choice.file.format),
    format: choice.file.format,
    splats: mesh.packedSplats ? mesh.packedSplats.numSplats : null,
  });

  let frames = 0;
  renderer.setAnimationLoop(() => {
    const delta = clock.getDelta();
    if (fly) {
      fly.update(delta);
      dirty = true;
    } else if (orbit.update()) {
      dirty = true;
    }
    if (!dirty) return;
    dirty = false;
    renderer.render(world, camera);
    frames += 1;
    root.dataset.frames = String(frames);
    if (frames === 1) setState("ready");
  });
}

$("copy-button").addEventListener("click", copyLink);
main().catch((error) => setState("error", `The scene could not be shown: ${error.message}`));
