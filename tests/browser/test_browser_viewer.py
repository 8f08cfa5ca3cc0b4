"""The viewer of a finished job renders its scene in headless Chromium (software WebGL).

The scene is a ball of 20,000 Gaussians in the trainer's frame (COLMAP: y down), written by the
trainer's own .splat, SPZ and SOG exporters. Its colours encode direction: red where the scene's "up" is (-y in
COLMAP), green on its right (+x). The screenshot is compared with a reference made by projecting the
Gaussian centres with the camera the viewer reports: the non-background masks must overlap (IoU) and
their centroids agree, and red must be above and green right of the rest, which also checks the
y-down -> y-up flip.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from photosplat_libs.db.job_statistics import JobStatistics
from photosplat_libs.events import HomeView


pytestmark = pytest.mark.browser

N = 20_000
RADIUS = 1.0
SIGMA = 0.035
BACKGROUND = np.array([0x15, 0x19, 0x1E])


def ball_scene(fmt: str) -> tuple[np.ndarray, bytes]:
    """The centres (COLMAP frame) and the exported bytes (``fmt``: splat, spz or sog) of the test ball."""
    from photosplat_trainer.export import EXPORT_FORMATS
    from photosplat_trainer.gaussians import SH_C0, GaussianSet

    rng = np.random.default_rng(7)
    direction = rng.normal(size=(N, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    means = (direction * RADIUS * rng.random((N, 1)) ** (1 / 3)).astype(np.float32)
    up, right = means[:, 1] < 0, means[:, 0] > 0
    colour = np.stack([np.where(up, 0.95, 0.1), np.where(right, 0.9, 0.1), np.full(N, 0.6)], axis=1)
    g = GaussianSet(
        means=means,
        log_scales=np.full((N, 3), np.log(SIGMA), np.float32),
        quats=np.tile(np.array([1, 0, 0, 0], np.float32), (N, 1)),
        opacity_logits=np.full(N, 3.0, np.float32),
        sh0=((colour - 0.5) / SH_C0).reshape(N, 1, 3).astype(np.float32),
        shN=np.zeros((N, 0, 3), np.float32),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = EXPORT_FORMATS[fmt][0](g, Path(tmp) / f"scene.{fmt}")
        return means, path.read_bytes()


def reference_mask(means: np.ndarray, camera: dict, width: int, height: int) -> np.ndarray:
    """Pixels covered by the Gaussians (2 sigma) seen from ``camera``, in three.js conventions (y up:
    the COLMAP frame turned 180 degrees about x, whichever file the viewer loaded)."""
    points = means * np.array([1, -1, -1])
    eye, target = np.array(camera["position"]), np.array(camera["target"])
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0, 1, 0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    rel = points - eye
    x, y, z = rel @ right, rel @ up, rel @ forward
    focal = (height / 2) / np.tan(np.radians(camera["fov"]) / 2)
    px = width / 2 + focal * x / z
    py = height / 2 - focal * y / z
    mask = np.zeros((height, width), bool)
    inside = (px >= 0) & (px < width) & (py >= 0) & (py < height)
    mask[py[inside].astype(int), px[inside].astype(int)] = True
    radius = int(round(2 * SIGMA * focal / np.median(z)))
    grown = np.zeros_like(mask)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if dx * dx + dy * dy <= radius * radius:
                grown |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return grown


def centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


# A capture camera as the trainer reports it (COLMAP frame: y down, z forward): 3 units in front of
# the ball, upright; in the viewer's world that is (0, 0, 3) looking at the origin.
HOME = HomeView(position=(0.0, 0.0, -3.0), target=(0.0, 0.0, 0.0), up=(0.0, -1.0, 0.0), fov_y_deg=40.0)


@pytest.mark.parametrize(
    "fmt,home", [("splat", None), ("spz", None), ("sog", None), ("spz", HOME)], ids=["splat", "spz", "sog", "spz-home"]
)
def test_viewer_renders_a_finished_scene(
    server, watched, done_job, web_assets, fmt: str, home: HomeView | None
) -> None:
    means, data = ball_scene(fmt)
    statistics = JobStatistics(home_view=home)
    job = done_job(
        {f"scene.{fmt}": data}, gaussian_count=N, image_count=30, registered_image_count=30, statistics=statistics
    )
    page = watched.page
    page.goto(f"{server.base}/v/{job.pub_key}")
    viewer = page.locator("#viewer")
    viewer.wait_for(state="visible")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=60_000)
    camera = json.loads(viewer.get_attribute("data-camera"))
    # .splat and SOG are y-down like the trainer's PLY and are turned; SPZ is y-up by its spec and is not
    assert camera["format"] == fmt and camera["flipped"] == (fmt in ("splat", "sog")) and camera["splats"] == N
    if home:  # the viewer opens at the trainer's capture camera, not at its own framing
        assert np.allclose(camera["position"], [0, 0, 3]) and np.allclose(camera["target"], [0, 0, 0])
        assert camera["fov"] == pytest.approx(40.0)

    # The toolbar floats over the canvas: out of the picture for the comparison.
    page.locator(".toolbar").evaluate("bar => { bar.style.visibility = 'hidden'; }")
    canvas = page.locator("#viewer-canvas canvas")
    box = canvas.bounding_box()
    width, height = int(box["width"]), int(box["height"])
    # Spark sorts in a worker and asks for another frame when done: wait for a stable picture.
    shot, previous = None, None
    for _ in range(40):
        shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).astype(int)[:height, :width]
        if previous is not None and np.abs(shot - previous).mean() < 0.5 and (shot != BACKGROUND).any():
            break
        previous = shot
        page.wait_for_timeout(250)
    assert shot is not None
    shot = shot[:height, :width]  # the element box may end on a fraction of a pixel

    Image.fromarray(shot.astype(np.uint8)).save(server.data.parent / f"viewer-{fmt}.png")
    foreground = np.abs(shot - BACKGROUND).max(axis=2) > 24
    assert foreground.mean() > 0.02, "the canvas shows only the background"
    reference = reference_mask(means, camera, width, height)
    iou = (foreground & reference).sum() / (foreground | reference).sum()
    offset = np.linalg.norm(centroid(foreground) - centroid(reference))
    print(f"{fmt}: IoU {iou:.3f}, centroid offset {offset:.1f} px")
    assert iou > 0.7, f"rendered and reference silhouettes overlap too little: IoU {iou:.2f}"
    assert offset < 0.03 * width, f"silhouette centroid is {offset:.1f} px off the reference"

    red = foreground & (shot[:, :, 0] > 128)
    green = foreground & (shot[:, :, 1] > 128)
    assert centroid(red)[1] < centroid(foreground & ~red)[1], "the scene is upside down"
    assert centroid(green)[0] > centroid(foreground & ~green)[0], "the scene is mirrored"

    # the page around the canvas: downloads, copy link
    page.locator(".toolbar").evaluate("bar => { bar.style.visibility = 'visible'; }")
    assert page.locator(f'a[href="/recon/pub/{job.pub_key}/scene.{fmt}"]').count() == 1
    page.get_by_role("button", name="Copy link").click()
    expect(page.locator("#copy-status")).to_have_text(re.compile(r"copied|copy the selected link"))
