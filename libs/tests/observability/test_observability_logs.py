"""Choosing the log format (a service's setting, else PHOTOSPLAT_LOG_FORMAT, else text) and the
text lines' job suffix; the JSON lines during a real job are in test_observability_worker.py."""

from __future__ import annotations

import io
import json
import logging

import pytest
from photosplat_libs.observability.logs import (
    TEXT_FORMAT,
    JobContextFilter,
    JsonFormatter,
    log_context,
    resolve_format,
)
from photosplat_libs.settings import ServiceSettings


def test_the_setting_wins_then_the_environment_then_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PHOTOSPLAT_LOG_FORMAT", raising=False)
    assert resolve_format(None) == "text"
    monkeypatch.setenv("PHOTOSPLAT_LOG_FORMAT", "JSON")
    assert resolve_format(None) == "json"
    assert resolve_format("text") == "text"
    monkeypatch.setenv("PHOTOSPLAT_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="PHOTOSPLAT_LOG_FORMAT"):
        resolve_format(None)


def test_a_services_own_setting_is_read_with_its_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    class ColmapLike(ServiceSettings):
        model_config = {**ServiceSettings.model_config, "env_prefix": "PHOTOSPLAT_COLMAP_"}

    monkeypatch.setenv("PHOTOSPLAT_COLMAP_LOG_FORMAT", "json")
    monkeypatch.setenv("PHOTOSPLAT_COLMAP_METRICS_PORT", "9100")
    settings = ColmapLike()
    assert (settings.log_format, settings.metrics_port) == ("json", 9100)


def _line(formatter: logging.Formatter, message: str) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(JobContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("photosplat.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info(message)
    finally:
        logger.removeHandler(handler)
    return out.getvalue().strip()


def test_text_lines_end_with_the_job_and_json_lines_carry_it() -> None:
    assert _line(logging.Formatter(TEXT_FORMAT), "idle").endswith("photosplat.test.logs: idle")
    with log_context(job_id="j-1", attempt=3), log_context(stage="train"):
        assert _line(logging.Formatter(TEXT_FORMAT), "step").endswith("step [job_id=j-1 stage=train attempt=3]")
        line = json.loads(_line(JsonFormatter(), "step"))
    assert (line["job_id"], line["stage"], line["attempt"], line["level"]) == ("j-1", "train", 3, "INFO")
    assert "job_id" not in json.loads(_line(JsonFormatter(), "after"))
