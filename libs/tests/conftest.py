"""Fixtures of the library's worker tests: the embedded adapters and a recorder of every event."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from photosplat_libs.service import Deps
from photosplat_testkit.embedded import embedded_deps, record_all
from photosplat_testkit.harness import EventRecorder


@pytest.fixture
async def deps(tmp_path: Path) -> AsyncIterator[Deps]:
    async with embedded_deps(tmp_path) as made:
        yield made


@pytest.fixture
async def recorder(deps: Deps) -> EventRecorder:
    return await record_all(deps.bus)
