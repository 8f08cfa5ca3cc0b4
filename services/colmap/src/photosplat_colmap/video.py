"""The frames SfM takes from a video capture: every frame is decoded once (PyAV), scored for
sharpness, and in each time window the sharpest one is kept, so the chosen frames cover the walk
evenly (about 2.5 a second) and a shaky or blurred frame loses to its neighbours. A window whose
best frame barely differs from the last kept one (the camera stood still) adds nothing and is
skipped. The kept frames are written as JPEG photos for the usual pipeline, which then matches them
in order (sequential matching).

Ingest has checked the video (container, codec, size, duration); this only decodes it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.error
import numpy as np
from photosplat_libs.errors import UserError
from photosplat_libs.media import VIDEO_EXTENSIONS
from PIL import Image

from photosplat_colmap.capture import JPEG_QUALITY, Photo, laplacian_variance, photos_from_folder
from photosplat_colmap.types import Reporter, SfmOptions

# Frames kept per second of video; SfM wants neighbours that overlap by ~70 %, and at a walking
# pace around a subject that is 2-3 a second.
FRAMES_PER_SECOND = 2.5
# Side of the grey image sharpness is judged on (as for photos, capture.py).
ANALYSIS_SIDE = 512
# Side of the thumbnail two frames are compared on, and the mean absolute difference (0..1) below
# which they count as the same view: sensor noise and compression stay under it, a step sideways
# does not.
_THUMB_SIDE = 32
STILL_MAX_CHANGE = 0.01
# Check for a cancel (and how far the decoding got) every this many frames.
_CHECK_EVERY = 30
# The ISO base media demuxer only (ingest let nothing else through).
_DEMUXER = "mov"
# A local run's frame limit (a service job's is ingest's photo limit, in its VideoInfo).
LOCAL_MAX_FRAMES = 1000


@dataclass
class FrameChoice:
    photos: list[Photo] = field(default_factory=list)
    decoded: int = 0
    still_skipped: int = 0
    window_seconds: float = 0.0
    seconds: float = 0.0

    def summary(self) -> str:
        still = f", {self.still_skipped} skipped (camera still)" if self.still_skipped else ""
        return (
            f"video: {len(self.photos)} frames chosen of {self.decoded} decoded (the sharpest of every "
            f"{self.window_seconds:.2f} s{still}) in {self.seconds:.1f} s"
        )


@dataclass
class _Candidate:
    window: int
    index: int
    frame: av.VideoFrame
    sharpness: float
    thumb: np.ndarray


def extract_frames(
    video: Path,
    out_dir: Path,
    *,
    max_frames: int,
    max_side: int | None,
    reporter: Reporter,
    frames_per_second: float = FRAMES_PER_SECOND,
) -> FrameChoice:
    """Choose the frames of ``video`` and write them to ``out_dir`` (the longer side at most
    ``max_side``, the display rotation applied): at most ``max_frames`` of them, one per window of
    ``1 / frames_per_second`` seconds (longer windows when the video is too long for that).

    Raises :class:`UserError` when fewer than three distinct views come out."""
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with av.open(str(video), format=_DEMUXER) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # frame threads: decoding is this step's whole cost
            window = max(1.0 / frames_per_second, _duration(container, stream) / max_frames)
            rate = float(stream.average_rate or stream.guessed_rate or 30)
            chooser = _Chooser(out_dir, window, max_frames, max_side, rate)
            _decode(container, stream, chooser, reporter)
    except av.error.FFmpegError as exc:
        raise UserError(f"the video could not be decoded ({exc.strerror or exc})") from exc
    choice = chooser.choice
    choice.seconds = time.monotonic() - started
    if len(choice.photos) < 3:
        raise UserError(
            f"the video gave only {len(choice.photos)} distinct view(s): walk around the subject while filming, "
            "slowly, for at least a few seconds"
        )
    return choice


def local_inputs(
    path: Path, work_dir: Path, options: SfmOptions, reporter: Reporter
) -> tuple[list[Photo], SfmOptions]:
    """What a command line names: a folder of photos, or a video file (``.mp4``, ``.mov``) whose
    chosen frames go to ``work_dir/frames``; with the options to match them by."""
    if not (path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS):
        return photos_from_folder(path), options
    choice = extract_frames(
        path, work_dir / "frames", max_frames=LOCAL_MAX_FRAMES, max_side=options.max_image_side, reporter=reporter
    )
    reporter.log(choice.summary())
    return choice.photos, dataclasses.replace(options, video=True)


def _decode(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, chooser: _Chooser, reporter: Reporter
) -> None:
    try:
        for frame in container.decode(stream):
            chooser.offer(frame)
            if chooser.choice.decoded % _CHECK_EVERY == 0:
                reporter.check_cancelled()
    except av.error.FFmpegError as exc:
        # A damaged tail (ingest checked the packets, not every frame): what decoded is kept.
        if chooser.choice.decoded == 0:
            raise
        reporter.log(f"video: decoding stopped after {chooser.choice.decoded} frames ({exc.strerror or exc})")
    chooser.close()


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration is not None else 0.0


class _Chooser:
    """Keeps the sharpest frame of the current window; writes it when the window ends."""

    def __init__(self, out_dir: Path, window: float, max_frames: int, max_side: int | None, rate: float) -> None:
        self.out_dir, self.window, self.max_frames, self.max_side = out_dir, window, max_frames, max_side
        self.rate = rate  # frames per second, for a frame without a timestamp
        self.choice = FrameChoice(window_seconds=window)
        self._best: _Candidate | None = None
        self._last_thumb: np.ndarray | None = None

    def offer(self, frame: av.VideoFrame) -> None:
        index = self.choice.decoded
        self.choice.decoded += 1
        seconds = max(frame.time if frame.time is not None else index / self.rate, 0.0)
        # The tolerance keeps 2.4 s in the window starting at 2.4 s (2.4 / 0.4 is 5.999... in floats).
        window = int(seconds / self.window + 1e-6)
        if self._best is not None and window != self._best.window:
            self.close()
        sharpness, thumb = _analyse(frame)
        if self._best is None or sharpness > self._best.sharpness:
            self._best = _Candidate(window, index, frame, sharpness, thumb)

    def close(self) -> None:
        """End the current window: keep its best frame unless it repeats the last one kept."""
        best, self._best = self._best, None
        if best is None or len(self.choice.photos) >= self.max_frames:
            return
        if self._last_thumb is not None and float(np.abs(best.thumb - self._last_thumb).mean()) < STILL_MAX_CHANGE:
            self.choice.still_skipped += 1
            return
        self.choice.photos.append(_write(best, self.out_dir, self.max_side))
        self._last_thumb = best.thumb


def _analyse(frame: av.VideoFrame) -> tuple[float, np.ndarray]:
    """Sharpness (variance of the Laplacian on a grey copy of at most ANALYSIS_SIDE) and a small
    thumbnail (0..1) to compare views by."""
    width, height = _scaled(frame.width, frame.height, ANALYSIS_SIDE)
    grey = frame.reformat(width=width, height=height, format="gray").to_ndarray()
    thumb = Image.fromarray(grey).resize(_scaled(width, height, _THUMB_SIDE), Image.Resampling.BOX)
    return laplacian_variance(grey.astype(np.float32)), np.asarray(thumb, np.float32) / 255.0


def _scaled(width: int, height: int, side: int | None) -> tuple[int, int]:
    scale = 1.0 if side is None else min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


# The display rotation (degrees counter-clockwise) as the transposition that applies it.
_ROTATIONS = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}


def _write(candidate: _Candidate, out_dir: Path, max_side: int | None) -> Photo:
    frame = candidate.frame
    width, height = _scaled(frame.width, frame.height, max_side)
    image = frame.reformat(width=width, height=height, format="rgb24").to_image()
    if (turn := _ROTATIONS.get(round(frame.rotation) % 360)) is not None:
        image = image.transpose(turn)
    # Named by the frame's index: the order SfM matches them in, and what a log line points at.
    name = f"frame_{candidate.index:05d}.jpg"
    image.save(out_dir / name, quality=JPEG_QUALITY)
    return Photo(path=out_dir / name, name=name)
