"""/docs in a real headless Chromium (playwright + Debian's chromium): the page renders, a file
is uploaded and a job submitted from the page, both answered with success."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from app_support import digits_onnx_bytes
from live_server import uvicorn_process

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_MS = 60_000  # a loaded 2-core machine renders the 1.5 MB Swagger bundle slowly


def _chromium() -> str:
    """Debian's chromium (playwright's own browser download is unreachable here)."""
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    reason = f"no chromium binary ({', '.join(CHROMIUM_NAMES)}); install it: .ci/services"
    print(f"SKIP: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture
def browser_page() -> Iterator[Any]:
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[dev]')"
        print(f"SKIP: {reason}", file=sys.stderr)
        pytest.skip(reason)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def _try_it_out(page: Any, operation_id: str, tag: str) -> Any:
    block = page.locator(f"#operations-{tag}-{operation_id}")
    block.locator(".opblock-summary").first.click()
    block.get_by_role("button", name="Try it out").click()
    return block


def _execute(block: Any, status: int) -> dict[str, Any]:
    block.get_by_role("button", name="Execute").click()
    row = block.locator(".live-responses-table .response").first
    row.locator(".response-col_status").filter(has_text=str(status)).wait_for()
    return dict(json.loads(row.locator(".response-col_description pre").first.inner_text()))


def test_docs_page_uploads_a_file_and_submits_a_job(browser_page, tmp_path: Path):
    page = browser_page
    teacher = tmp_path / "teacher.onnx"
    teacher.write_bytes(digits_onnx_bytes())  # fits the prefilled builtin:digits
    with uvicorn_process(tmp_path / "data", {}) as (url, _port):
        page.goto(f"{url}/docs")
        page.locator("#operations-jobs-create_job").wait_for()  # rendered from /openapi.json

        block = _try_it_out(page, "upload_file", "uploads")
        block.locator("input[type=file]").set_input_files(str(teacher))
        uploaded = _execute(block, 201)
        assert uploaded["kind"] == "onnx"

        block = _try_it_out(page, "create_job", "jobs")
        body = block.locator("textarea.body-param__text")
        prefilled = body.input_value()
        assert "additionalProp" not in prefilled
        spec = json.loads(prefilled)  # the smallest spec, real field names
        assert spec["student"] == {"arch": "cnn-tiny"}
        spec["teacher"]["source"] = f"upload:{uploaded['id']}"
        body.fill(json.dumps(spec))
        job = _execute(block, 202)
        assert job["state"] == "queued"
        # The job the page created is the server's: readable over plain HTTP too.
        assert httpx.get(f"{url}/jobs/{job['id']}", timeout=10).json()["id"] == job["id"]
