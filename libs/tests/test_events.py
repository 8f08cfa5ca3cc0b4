"""The event contract's typed payloads: they round-trip, messages written before they were typed
still decode, and a key that producer and consumer spell differently is refused."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from photosplat_libs.events import (
    ExportInfo,
    HomeView,
    ProgressMetrics,
    SfmDone,
    SfmStats,
    SfmTimings,
    Stage,
    StageProgress,
    TrainingDone,
    TrainingTimings,
    decode,
    encode,
)

JOB = uuid.UUID("5d0f8a5e-7d3c-4f57-9a43-9bb3c1f6a3c1")
TIMINGS = TrainingTimings(
    download_seconds=1.5, train_seconds=600.0, train_stage_seconds=640.0, upload_seconds=3.0, total_seconds=645.0
)


def typed_events() -> list[SfmDone | TrainingDone | StageProgress]:
    return [
        SfmDone(
            job_id=JOB,
            sparse_key="jobs/x/sfm/undistorted/",
            registered_images=48,
            total_images=50,
            points=31_000,
            reprojection_error=0.8,
            stats=SfmStats(
                mean_track_length=4.2,
                timings=SfmTimings(capture=0.4, extraction=12.3, matching=30.1, mapping=45.0, undistortion=5.2),
                blurry_removed=2,
                warnings=("2 very blurry photo(s) left out: a.jpg, b.jpg",),
                matcher="exhaustive",
                mapper="incremental",
                attempts=("exhaustive + incremental: 48 of 50",),
            ),
        ),
        TrainingDone(
            job_id=JOB,
            exports=(ExportInfo(format="splat", key="jobs/x/output/scene.splat", bytes=1024, psnr=27.0),),
            gaussian_count=100_000,
            psnr=27.2,
            ssim=0.9,
            timings=TIMINGS.model_copy(update={"gpu_seconds": 600.0}),
            thumbnail_key="jobs/x/output/thumbnail.png",
            home_view=HomeView(position=(0, 0, -4), target=(0, 0, 0), up=(0, -1, 0), fov_y_deg=50),
        ),
        StageProgress(
            job_id=JOB,
            stage=Stage.TRAIN,
            fraction=0.4,
            metrics=ProgressMetrics(step=400, loss=0.05, psnr=24.5, eval_psnr=23.9, gaussians=90_000),
        ),
        StageProgress(
            job_id=JOB, stage=Stage.SFM, fraction=0.3, metrics=ProgressMetrics(extracted=20, images=50, registered=0)
        ),
    ]


@pytest.mark.parametrize("event", typed_events(), ids=lambda e: e.type)
def test_typed_payloads_round_trip(event: SfmDone | TrainingDone | StageProgress) -> None:
    assert decode(encode(event)) == event


def message(event_type: str, **payload: object) -> bytes:
    return json.dumps({"type": event_type, "job_id": str(JOB), **payload}).encode()


SFM_HEADLINE = dict(sparse_key="k/", registered_images=3, total_images=3, points=10, reprojection_error=0.5)


def test_messages_written_before_the_payloads_were_typed_still_decode() -> None:
    # What SfmResult.stats(), the trainer's timings dict and the worker's float()-ed metrics wrote.
    sfm = decode(
        message(
            "SfmDone",
            **SFM_HEADLINE,
            stats={
                "mean_track_length": 3.1,
                "timings": {"capture": 0.1, "extraction": 1.0, "matching": 2.0, "mapping": 3.0, "undistortion": 0.5},
                "blurry_removed": 0,
                "warnings": [],
                "matcher": "exhaustive",
                "mapper": "incremental",
                "attempts": ["exhaustive + incremental: 3 of 3"],
            },
        )
    )
    assert isinstance(sfm, SfmDone) and sfm.stats.timings.mapping == 3.0 and sfm.stats.timings.known_poses is None
    assert isinstance(bare := decode(message("SfmDone", **SFM_HEADLINE, stats={})), SfmDone)
    assert bare.stats == SfmStats()

    old_timings = TIMINGS.model_dump(exclude={"gpu_seconds"})
    training = decode(message("TrainingDone", exports=[], gaussian_count=1, timings=old_timings))
    assert isinstance(training, TrainingDone) and training.timings == TIMINGS
    untimed = decode(message("TrainingDone", exports=[], gaussian_count=1, timings={}))
    assert isinstance(untimed, TrainingDone) and untimed.timings is None

    progress = decode(
        message("StageProgress", stage="train", fraction=0.5, metrics={"step": 400.0, "loss": 0.1, "gaussians": 5e4})
    )
    assert isinstance(progress, StageProgress)
    assert progress.metrics == ProgressMetrics(step=400, loss=0.1, gaussians=50_000)
    assert type(progress.metrics.step) is int


@pytest.mark.parametrize(
    ("event_type", "payload"),
    [
        # the bug this contract closes: the trainer wrote train_seconds, a reader looked for "train"
        ("TrainingDone", dict(exports=[], gaussian_count=1, timings={**TIMINGS.model_dump(), "train": 600.0})),
        ("TrainingDone", dict(exports=[], gaussian_count=1, timings={"train": 600.0})),
        ("SfmDone", dict(**SFM_HEADLINE, stats={"timings": {"extract": 1.0}})),
        ("SfmDone", dict(**SFM_HEADLINE, stats={"registered": 3})),
        ("StageProgress", dict(stage="train", fraction=0.5, metrics={"iteration": 400})),
    ],
)
def test_a_key_the_contract_does_not_name_is_refused(event_type: str, payload: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted|Field required"):
        decode(message(event_type, **payload))


def test_producers_cannot_build_a_misspelt_payload() -> None:
    with pytest.raises(ValidationError):
        TrainingTimings(**{**TIMINGS.model_dump(), "gpu_secs": 1.0})
    with pytest.raises(ValidationError):
        SfmTimings(**{"extraction": 1.0, "known_pose": 2.0})
    with pytest.raises(ValidationError):
        ProgressMetrics.model_validate({"step": 1, "psnr_eval": 20.0})


def test_sfm_timings_total_only_what_ran() -> None:
    assert SfmTimings(capture=1.0, known_poses=2.5).total() == 3.5
    assert ProgressMetrics(step=3, loss=0.5).reported() == {"step": 3, "loss": 0.5}
