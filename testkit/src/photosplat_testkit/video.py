"""Small real videos for tests: the synthetic scene filmed along an arc (a phone walking around it),
or cheap noise frames, encoded with PyAV (FFmpeg's encoders: H.264 by default, any other to test a
refusal). Some frames can be blurred (a shaky hand) and the stream can carry a phone's rotation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageFilter

from photosplat_testkit.synthetic import SyntheticScene, render_scene

# Encoders whose decoders want full-range pixels (MJPEG) rather than video range.
_PIXEL_FORMATS = {"mjpeg": "yuvj420p"}


@dataclass(frozen=True)
class SyntheticVideo:
    path: Path
    scene: SyntheticScene  # scene.images[i] is frame i as encoded (blur included)
    fps: int
    blurred: frozenset[int]

    @property
    def seconds(self) -> float:
        return len(self.scene.images) / self.fps


def write_video(
    frames: Iterable[np.ndarray],
    path: Path,
    *,
    fps: int = 10,
    codec: str = "libx264",
    rotation: int = 0,
    container: str | None = None,
    metadata: dict[str, str] | None = None,
    audio: bool = False,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (H x W x 3 uint8, all of one size) into ``path`` (MP4 or MOV by its name,
    unless ``container`` names a format). ``rotation`` is the display rotation a phone records
    (degrees counter-clockwise; a portrait iPhone video is stored landscape with -90); ``metadata``
    goes into the container (a phone writes ``location`` there) and ``audio`` adds a silent track;
    ``container_options`` are the muxer's (``{"movflags": "faststart"}``: the index first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container, options=container_options or {}) as out:
        out.metadata.update(metadata or {})
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.pix_fmt = _PIXEL_FORMATS.get(codec, "yuv420p")
        if codec == "libx264":
            # Nearly lossless, so a blurred frame stays blurred and a sharp one sharp.
            stream.options = {"preset": "ultrafast", "crf": "12"}
        if rotation:
            stream.set_display_rotation(rotation)
        # Every track is declared before the first packet is written.
        sound = out.add_stream("aac", rate=48000, layout="mono") if audio else None
        for index, pixels in enumerate(frames):
            if index == 0:
                stream.height, stream.width = pixels.shape[:2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if sound is not None:
            _silence(out, sound)
    return path


def _silence(out: av.container.OutputContainer, track: av.audio.stream.AudioStream, seconds: float = 1.0) -> None:
    rate = track.codec_context.sample_rate
    for start in range(0, int(seconds * rate), 1024):
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in track.encode(frame):
            out.mux(packet)
    for packet in track.encode():
        out.mux(packet)


def blurred(pixels: np.ndarray, radius: float = 3.0) -> np.ndarray:
    """The frame as a shaky hand or a missed focus would give it."""
    return np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(radius)))


def noise_frames(count: int, width: int = 320, height: int = 240, seed: int = 0) -> list[np.ndarray]:
    """Frames of random pixels: a valid video in no time, for tests that never run SfM."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(count)]


def render_video(
    path: Path,
    *,
    seconds: float = 4.0,
    fps: int = 10,
    width: int = 320,
    height: int = 240,
    arc_degrees: float = 100.0,
    blur: Sequence[int] = (),
    still: int = 0,
    seed: int = 0,
    codec: str = "libx264",
    rotation: int = 0,
) -> SyntheticVideo:
    """The synthetic scene filmed along an arc of ``arc_degrees`` for ``seconds``; the frames whose
    indices ``blur`` lists are blurred, and the last frame is held for ``still`` more frames (the
    camera stopping)."""
    moving = round(seconds * fps) - still
    scene = render_scene(n_views=moving, width=width, height=height, seed=seed, arc_degrees=arc_degrees, n_points=10)
    scene.images += [scene.images[-1]] * still
    scene.cams_from_world += [scene.cams_from_world[-1]] * still
    scene.names = [f"frame_{i:05d}.jpg" for i in range(len(scene.images))]
    scene.images = [blurred(p) if i in blur else p for i, p in enumerate(scene.images)]
    write_video(scene.images, path, fps=fps, codec=codec, rotation=rotation)
    return SyntheticVideo(Path(path), scene, fps, frozenset(blur))
