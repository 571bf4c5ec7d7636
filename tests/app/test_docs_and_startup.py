"""Offline docs pages, the published spec schema, and an API process free of torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import pytest
from app_support import make_settings

from akd_service.config import Settings
from app.main import create_app


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_use_only_local_assets_and_they_are_served(client, page):
    r = client.get(page)
    assert r.status_code == 200
    html = r.text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)
    assert urls, html
    for url in urls:
        assert not url.startswith(("http:", "https:", "//")), url
        assert client.get(url).status_code == 200, url
    assert "cdn.jsdelivr" not in html and "fonts.googleapis" not in html


def test_openapi_documents_the_job_spec_and_multipart_upload(client):
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/JobSpec"
    assert "teacher" in doc["components"]["schemas"]["JobSpec"]["properties"]
    assert "multipart/form-data" in doc["paths"]["/uploads"]["post"]["requestBody"]["content"]


def test_job_spec_schema_is_published(client):
    schema = client.get("/schema/job-spec").json()
    assert set(schema["required"]) == {"teacher", "student", "dataset"}


def test_report_schema_is_published_as_in_docs(client):
    from akd_core.report_schema import SCHEMA_PATH

    r = client.get("/schema/report")
    assert r.status_code == 200
    assert r.json() == json.loads(SCHEMA_PATH.read_text())
    assert "history" in r.json()["required"]


def test_building_and_serving_the_app_does_not_import_torch(tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        from fastapi.testclient import TestClient
        from akd_service.config import Settings
        from app.main import create_app
        app = create_app(Settings(data_dir={str(tmp_path)!r}))
        with TestClient(app, base_url="http://localhost") as c:
            assert c.get("/healthz").json()["database"] == "ok"
            assert c.get("/schema/job-spec").status_code == 200
            assert c.get("/schema/report").status_code == 200
            assert c.post("/jobs", json={{"student": {{"arch": "mlp"}}}}).status_code == 422
        print("torch" in sys.modules)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_public_bind_without_keys_is_refused(tmp_path):
    with pytest.raises(ValueError, match="AKD_REQUIRE_KEYS"):
        Settings(data_dir=tmp_path, host="0.0.0.0")
    assert Settings(data_dir=tmp_path, host="0.0.0.0", require_keys=True).host == "0.0.0.0"
    assert Settings(data_dir=tmp_path, host="::1").db_url.endswith("akd.db")


def test_settings_come_from_akd_environment_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("AKD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AKD_MAX_UPLOAD_BYTES", "1234")
    s = Settings()
    assert s.max_upload_bytes == 1234
    assert s.artifacts == tmp_path / "artifacts"
    assert s.db_url == f"sqlite:///{tmp_path}/akd.db"


def test_the_version_has_one_source(settings, monkeypatch):
    """/healthz, the OpenAPI document and the package metadata all say akd_core.__version__."""
    from importlib.metadata import version

    from fastapi.testclient import TestClient

    import akd_core
    from app.main import create_app

    assert version("akd") == akd_core.__version__
    monkeypatch.setattr(akd_core, "__version__", "9.8.7")
    with TestClient(create_app(settings), base_url="http://localhost") as c:
        assert c.get("/healthz").json()["version"] == "9.8.7"
        assert c.get("/openapi.json").json()["info"]["version"] == "9.8.7"


def test_the_app_enqueues_through_the_queue_it_is_given_or_the_settings_broker(tmp_path):
    from akd_service.queue import CeleryQueue

    given = CeleryQueue("memory://")
    assert create_app(make_settings(tmp_path), given).state.queue is given
    settings = make_settings(tmp_path, broker_url="redis://broker.example:6379/0")
    default = create_app(settings).state.queue  # `uvicorn --factory`: no queue given
    assert isinstance(default, CeleryQueue) and default.broker_url == settings.broker_url
