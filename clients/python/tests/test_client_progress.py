"""The text progress: a line per photo and the total, redrawn in place only on a terminal."""

from __future__ import annotations

import io

from photosplat_client.progress import DownloadProgress, UploadProgress, bar


def test_bar_shows_fraction_and_sizes() -> None:
    assert bar(512 * 1024, 1024 * 1024) == "[############............]  50% 512.0 KiB/1.0 MiB"
    assert bar(10, None).endswith("10 B")


def test_into_a_file_each_finished_photo_is_one_line_with_the_total() -> None:
    out = io.StringIO()
    progress = UploadProgress(out, live=False)
    progress.begin(3, 3000, done_files=1, done_bytes=1000)
    for name in ("b.jpg", "c.jpg"):
        progress.started(name, 1000)
        progress.sent(name, 1000)
        progress.finished(name)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "resuming: 1 of 3 photos were uploaded before"
    assert lines[1].startswith("  b.jpg uploaded (1000 B); total 2/3 photos")
    assert lines[2].startswith("  c.jpg uploaded (1000 B); total 3/3 photos") and "100%" in lines[2]
    assert "\x1b" not in out.getvalue()


def test_on_a_terminal_the_bars_are_redrawn_in_place() -> None:
    out = io.StringIO()
    progress = UploadProgress(out, live=True)
    progress.begin(2, 2000)
    progress.started("a.jpg", 1000)
    progress.started("b.jpg", 1000)
    progress.finished("a.jpg")
    text = out.getvalue()
    assert "\x1b[3F\x1b[J" in text  # two photo bars and the total, erased before the finished line
    assert text.rstrip("\n").splitlines()[-2:] == [
        "  b.jpg [........................]   0% 0 B/1000 B",
        "total 1/2 photos [############............]  50% 1000 B/2.0 KiB",
    ]


def test_a_download_without_a_terminal_writes_one_line() -> None:
    out = io.StringIO()
    progress = DownloadProgress("scene.spz", out, live=False)
    progress(100, 200)
    progress(200, 200)
    progress.close()
    assert out.getvalue() == "scene.spz [########################] 100% 200 B/200 B\n"
