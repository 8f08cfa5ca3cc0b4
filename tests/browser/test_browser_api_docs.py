"""/docs of `photosplat up` in headless Chromium: Swagger UI from this server's own files shows
every operation of the merged description, with no console error (a Content-Security-Policy
violation is one) and no request leaving the server (conftest checks both)."""

from __future__ import annotations

import httpx
import pytest

expect = pytest.importorskip("playwright.sync_api", reason="playwright is a test extra").expect

pytestmark = pytest.mark.browser


def test_the_api_page_shows_every_operation(server, watched, web_assets) -> None:
    spec = httpx.get(f"{server.base}/openapi.json").json()
    operations = [op["operationId"] for methods in spec["paths"].values() for op in methods.values()]
    page = watched.page
    page.goto(f"{server.base}/docs")
    expect(page.locator(".opblock")).to_have_count(len(operations), timeout=15_000)
    for operation_id in ("create_job", "get_job_status", "get_scene_file"):
        expect(page.locator(f"[id$='-{operation_id}']")).to_have_count(1)
    expect(page.locator(".btn.authorize")).to_be_visible()  # the Bearer schemes are declared
