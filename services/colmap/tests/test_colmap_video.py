"""The frames SfM takes from a video: the sharpest of each window, evenly over the walk, none while
the camera stands still, at most the frame limit, upright; and SfM placing them (``photosplat sfm
VIDEO``). The video is the synthetic scene filmed along an arc and encoded with PyAV."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from photosplat_libs.errors import UserError
from PIL import Image

from photosplat_colmap import cli
from photosplat_colmap.matching import choose_matcher
from photosplat_colmap.types import SfmOptions
from photosplat_colmap.video import FrameChoice, extract_frames
from photosplat_testkit.video import SyntheticVideo, render_video, write_video

MOVING, STILL = 14, 6  # frames: 2.8 s walking, then 1.2 s standing (5 fps)
# Every other frame blurred while walking: each window (0.4 s, 2 frames) must pick the sharp one.
BLURRED = [i for i in range(MOVING) if i % 2 == 0]


class Quiet:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def progress(self, fraction: float, eta_seconds: float | None = None, **metrics: float) -> None:
        pass

    def log(self, *lines: str) -> None:
        self.lines.extend(lines)

    def check_cancelled(self) -> None:
        pass


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> SyntheticVideo:
    # Recorded by a phone held upright: stored landscape, displayed turned a quarter clockwise.
    path = tmp_path_factory.mktemp("video") / "walk.mp4"
    return render_video(path, seconds=4.0, fps=5, still=STILL, blur=BLURRED, rotation=-90)


def _indices(choice: FrameChoice) -> list[int]:
    return [int(Path(p.name).stem.removeprefix("frame_")) for p in choice.photos]


def test_the_sharpest_frame_of_each_window_is_kept_and_a_still_camera_adds_none(
    video: SyntheticVideo, tmp_path: Path
) -> None:
    choice = extract_frames(video.path, tmp_path, max_frames=1000, max_side=1600, reporter=Quiet())

    chosen = _indices(choice)
    # One per 0.4 s while walking, the sharp one; the three windows of standing still repeat the
    # last view (frame 13, where the camera stopped).
    assert chosen == [1, 3, 5, 7, 9, 11, 13] and not set(chosen) & set(BLURRED), chosen
    assert (choice.decoded, choice.still_skipped, choice.window_seconds) == (20, 3, 0.4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in choice.photos]
    with Image.open(choice.photos[0].path) as first:
        assert first.size == (video.scene.height, video.scene.width)  # upright: portrait
    assert "7 frames chosen of 20 decoded" in choice.summary() and "3 skipped (camera still)" in choice.summary()


def test_a_long_video_is_cut_into_longer_windows_to_stay_within_the_frame_limit(
    video: SyntheticVideo, tmp_path: Path
) -> None:
    choice = extract_frames(video.path, tmp_path, max_frames=5, max_side=120, reporter=Quiet())

    assert choice.window_seconds == pytest.approx(0.8) and len(choice.photos) <= 5
    assert all(max(Image.open(p.path).size) <= 120 for p in choice.photos)


def test_a_video_of_one_view_fails_with_advice(tmp_path: Path) -> None:
    frame = np.random.default_rng(0).integers(0, 256, size=(240, 320, 3), dtype=np.uint8)
    path = write_video([frame] * 30, tmp_path / "still.mp4")

    with pytest.raises(UserError, match="only 1 distinct view.*walk around the subject"):
        extract_frames(path, tmp_path / "frames", max_frames=1000, max_side=None, reporter=Quiet())


def test_the_frames_of_a_video_are_matched_in_order() -> None:
    assert choose_matcher([], SfmOptions(video=True)) == ("sequential", "frames of one video, in order")
    assert choose_matcher([], SfmOptions(video=True, matcher="exhaustive"))[0] == "exhaustive"


@pytest.mark.slow
def test_photosplat_sfm_places_the_frames_of_a_video(
    video: SyntheticVideo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main([str(video.path), "--out", str(tmp_path / "out")])

    out, err = capsys.readouterr()
    assert code == 0, err[-3000:]
    assert "video: 7 frames chosen of 20 decoded" in err and "matching: sequential (frames of one video" in err
    assert re.search(r"^registered\s+7/7$", out, re.M), out
    images = sorted(p.name for p in (tmp_path / "out" / "undistorted" / "images").iterdir())
    assert images == [f"frame_{i:05d}.jpg" for i in range(1, 14, 2)]
