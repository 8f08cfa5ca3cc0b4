"""Checking an uploaded video (docs/architecture.md §6) and keeping only its video track. Pure: a
file in, a remuxed copy and its figures, or a :class:`~.rules.FileRejected` naming the rule, out.
Callers run :func:`check_video` in a thread.

Only FFmpeg's ISO base media demuxer (MP4 and QuickTime) ever reads an upload, and only after its
first box says it is one; the codec, size and duration are judged from the headers, then the first
frame is decoded (the codec really decodes) and the video track is copied packet by packet, not
decoded, into a fresh MP4: audio, GPS and every other metadata stay behind. Decoding every frame is
the colmap stage's work.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from photosplat_ingest.validation.rules import FileRejected, Limits, Rule

# FFmpeg's demuxer for MP4, MOV and their relatives: nothing else parses an upload.
DEMUXER = "mov"
# By the codec descriptor's name; what phones record (H.264, HEVC) and what browsers and Android
# export (VP9, AV1). ProRes, MJPEG, MPEG-4 Part 2 and the rest are refused by name.
CODECS = {"h264": "H.264", "hevc": "HEVC (H.265)", "vp9": "VP9", "av1": "AV1"}
# The first box of an ISO base media file: ftyp, or in old QuickTime files one of these.
_FIRST_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot")
# A video missing more of the frames its index lists than this was cut short in transfer.
_MISSING_FRAMES_TOLERANCE = 0.01


@dataclass(frozen=True)
class CheckedVideo:
    path: Path  # the video track alone, remuxed into an MP4
    codec: str
    width: int  # as displayed (rotation applied)
    height: int
    duration_seconds: float
    frame_rate: float | None


def looks_like_video(head: bytes) -> bool:
    """Whether the first bytes of a file are an ISO base media box header (MP4, MOV)."""
    return len(head) >= 8 and head[4:8] in _FIRST_BOXES


def check_video(source: Path, dest: Path, limits: Limits) -> CheckedVideo:
    """Judge the video at ``source`` and write its video track to ``dest``.

    Raises :class:`FileRejected` for anything but a complete MP4/MOV video of an allowed codec,
    size and duration."""
    size = source.stat().st_size
    if size == 0:
        raise FileRejected(Rule.EMPTY, "the file is empty")
    if size > limits.max_video_bytes:
        limit = limits.max_video_bytes
        raise FileRejected(Rule.MAX_BYTES, f"{size} bytes exceeds the limit of {limit} bytes for a video")
    with source.open("rb") as f:
        if not looks_like_video(f.read(12)):
            raise FileRejected(Rule.FORMAT, "not an MP4 or MOV video")
    try:
        with av.open(str(source), format=DEMUXER) as container:
            checked = _check_headers(container, limits)
            rotation = _first_frame_rotation(container)
    except av.error.FFmpegError as exc:
        raise FileRejected(Rule.CORRUPT, f"the video could not be read ({exc.strerror or exc})") from exc
    width, height = (checked.height, checked.width) if rotation % 180 == 90 else (checked.width, checked.height)
    frames, declared = _remux(source, dest)
    if declared and frames < declared * (1 - _MISSING_FRAMES_TOLERANCE):
        raise FileRejected(Rule.CORRUPT, f"the video is cut short: {frames} of its {declared} frames are there")
    return CheckedVideo(dest, checked.codec, width, height, checked.duration_seconds, checked.frame_rate)


def _check_headers(container: av.container.InputContainer, limits: Limits) -> CheckedVideo:
    """Codec, frame size and duration, from the headers only (nothing decoded yet)."""
    if not container.streams.video:
        raise FileRejected(Rule.FORMAT, "the file has no video track")
    stream = container.streams.video[0]
    codec = stream.codec_context.codec.canonical_name
    if codec not in CODECS:
        allowed = ", ".join(CODECS.values())
        raise FileRejected(
            Rule.CODEC, f"video codec {codec!r} is not accepted (allowed: {allowed}; phones record H.264 or HEVC)"
        )
    width, height = stream.codec_context.width, stream.codec_context.height
    if width * height > limits.max_video_pixels:
        raise FileRejected(
            Rule.MAX_PIXELS,
            f"{width}x{height} = {width * height} pixels per frame exceeds the limit of {limits.max_video_pixels} "
            "for a video (4K is the most)",
        )
    if min(width, height) < limits.min_video_side:
        raise FileRejected(Rule.MIN_SIDE, f"{width}x{height} is smaller than {limits.min_video_side} pixels on a side")
    duration = _duration(container, stream)
    if duration < limits.min_video_seconds:
        raise FileRejected(
            Rule.DURATION,
            f"{duration:.1f} s is shorter than the minimum of {limits.min_video_seconds:g} s: film the subject "
            "while walking around it",
        )
    if duration > limits.max_video_seconds:
        raise FileRejected(
            Rule.DURATION, f"{duration:.1f} s is longer than the maximum of {limits.max_video_seconds:g} s"
        )
    rate = float(stream.average_rate) if stream.average_rate else None
    return CheckedVideo(Path(), codec, width, height, duration, rate)


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        seconds = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        seconds = container.duration / av.time_base
    else:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise FileRejected(Rule.CORRUPT, "the video does not say how long it is")
    return seconds


def _first_frame_rotation(container: av.container.InputContainer) -> int:
    """Decode the first frame (the codec really decodes this file); its display rotation."""
    for frame in container.decode(video=0):
        return round(frame.rotation) % 360
    raise FileRejected(Rule.CORRUPT, "the video has no frame that decodes")


def _remux(source: Path, dest: Path) -> tuple[int, int]:
    """Copy the video track alone into a new MP4 (the display rotation comes along with the
    stream's parameters; container metadata and other tracks do not). The packets copied and the
    frames the source's index declares."""
    copied = 0
    try:
        with av.open(str(source), format=DEMUXER) as src, av.open(str(dest), "w", format="mp4") as out:
            track = src.streams.video[0]
            declared = track.frames
            # opaque: the parameters are copied as they are (an AV1 stream has no encoder here to build).
            target = out.add_stream_from_template(track, opaque=True)
            for packet in src.demux(track):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.stream = target
                out.mux(packet)
                copied += 1
    except av.error.FFmpegError as exc:
        raise FileRejected(Rule.CORRUPT, f"the video could not be read to its end ({exc.strerror or exc})") from exc
    return copied, declared
