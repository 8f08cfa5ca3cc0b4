"""Integer query parameters out of range answer 422 naming the parameter, on SQLite and Postgres
(a value past 64 bits once reached the database driver and came back as a 500)."""

from __future__ import annotations

from typing import Any

import pytest

from photosplat_libs.db.models import JobStatus
from photosplat_status.api import MAX_LIST_LIMIT, MAX_LIST_OFFSET

OUT_OF_RANGE = [
    ("offset", "9223372036854775808"),  # 2**63: past a 64-bit integer
    ("offset", str(2**70)),
    ("offset", str(MAX_LIST_OFFSET + 1)),
    ("offset", "-1"),
    ("limit", "0"),
    ("limit", str(MAX_LIST_LIMIT + 1)),
    ("limit", "-9223372036854775809"),
    ("limit", "1e400"),
]


@pytest.fixture
async def status(either_database: str, memory_bus: Any, folder_store: Any, kit: Any) -> Any:
    async with kit.running_status(either_database, memory_bus, folder_store) as running:
        yield running


async def test_list_parameters_out_of_range_are_422_not_500(status: Any, kit: Any) -> None:
    job = await kit.insert_job(status.db, status=JobStatus.DONE, stage="export")
    headers = {"Authorization": f"Bearer {job.token}"}
    for name, value in OUT_OF_RANGE:
        response = await status.client.get(f"/recon/jobs?{name}={value}", headers=headers)
        assert response.status_code == 422, (name, value, response.text)
        assert response.json()["detail"][0]["loc"] == ["query", name]

    last = await status.client.get(f"/recon/jobs?offset={MAX_LIST_OFFSET}&limit={MAX_LIST_LIMIT}", headers=headers)
    assert last.status_code == 200
    assert (last.json()["total"], last.json()["items"]) == (1, [])
