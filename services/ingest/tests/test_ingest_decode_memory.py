"""What a decode costs: the pixel limit is read from the header before decoding, a decode holds about
one copy of the pixels, and at most ``decode_concurrency`` run at once, even when clients hang up."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from photosplat_ingest import intake as intake_module
from photosplat_ingest.intake import Decoder, Intake
from photosplat_ingest.settings import IngestSettings
from photosplat_ingest.validation import Limits, SanitizedImage

ZeroPng = Callable[[int, int], bytes]

MIB = 1024 * 1024
# Pillow keeps RGB pixels in 4 bytes.
BYTES_PER_RGB_PIXEL = 4

_PEAK_SCRIPT = """
import json, resource, sys
from photosplat_ingest.validation import FileRejected, Limits, sanitize
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    sanitize(data, Limits(max_pixels=int(sys.argv[2])))
    rule = None
except FileRejected as exc:
    rule = str(exc.rule)
grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
print(json.dumps({"rule": rule, "grown": grown}))
"""


def _sanitize_in_a_fresh_process(path: Path, max_pixels: int) -> dict[str, object]:
    """Peak resident memory is per process: a fresh one measures this decode alone."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _PEAK_SCRIPT, str(path), str(max_pixels)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_a_100_megapixel_png_is_refused_from_its_header_without_decoding(tmp_path: Path, zero_png: ZeroPng) -> None:
    path = tmp_path / "zeros.png"
    path.write_bytes(zero_png(10_000, 10_000))
    assert path.stat().st_size < 400_000

    result = _sanitize_in_a_fresh_process(path, IngestSettings().max_pixels)

    assert result["rule"] == "max_pixels"
    assert result["grown"] < 32 * MIB  # the header only: decoding it would take ~400 MB per copy


def test_a_decode_within_the_limit_holds_about_one_copy_of_the_pixels(tmp_path: Path, zero_png: ZeroPng) -> None:
    width = height = 6_000
    path = tmp_path / "zeros.png"
    path.write_bytes(zero_png(width, height))
    one_copy = width * height * BYTES_PER_RGB_PIXEL

    result = _sanitize_in_a_fresh_process(path, width * height)

    # The stated bound: one decoded copy of the pixels and 16 MB for buffers (a second copy, as an
    # EXIF rotation into a new image makes, would take ~140 MB more).
    assert result["rule"] is None
    assert result["grown"] < one_copy + 16 * MIB, result


async def test_a_cancelled_request_keeps_its_decode_slot_until_the_decode_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, most = 0, 0
    lock, release = threading.Lock(), threading.Event()

    def slow_sanitize(data: bytes, limits: Limits) -> SanitizedImage:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(5)
        with lock:
            running -= 1
        return SanitizedImage(data, ".jpg", "image/jpeg", 100, 100, None, None, data.hex())

    monkeypatch.setattr(intake_module, "sanitize", slow_sanitize)
    decoder = Decoder(slots=1)
    try:
        first = asyncio.create_task(Intake(Limits(), tmp_path, decoder).add(0, "a.jpg", b"a"))
        await asyncio.sleep(0.1)
        first.cancel()  # the client hung up; its thread still decodes
        second = asyncio.create_task(Intake(Limits(), tmp_path, decoder).add(1, "b.jpg", b"b"))
        await asyncio.sleep(0.2)
        release.set()
        assert await second
    finally:
        decoder.close()
    assert most == 1
