"""POST /jobs runs the torch-free pre-flight: option values refused before a job is queued."""

from __future__ import annotations

import io
import zipfile

import pytest
from app_support import assert_problem, onnx_classifier_bytes, spec_for, upload_id
from PIL import Image


def _image_folder_zip() -> bytes:
    """Two classes of 16x16 PNGs: its headers tell no sample shape (no dataset.image_size)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for label in ("cat", "dog"):
            for i in range(3):
                png = io.BytesIO()
                Image.new("RGB", (16, 16), (40 * i, 90, 200)).save(png, format="PNG")
                zf.writestr(f"{label}/{i}.png", png.getvalue())
    return buf.getvalue()


@pytest.mark.parametrize(
    ("student", "field", "words"),
    [
        ({"arch": "cnn", "options": {"width": 0}}, "student.options.width", "from 1 to"),
        ({"arch": "mlp", "options": {"hidden": "wide"}}, "student.options.hidden", "[128, 64]"),
    ],
)
def test_a_bad_option_value_is_422_before_any_job(client, enqueued, student, field, words):
    teacher = upload_id(client, "teacher.onnx", onnx_classifier_bytes(["N", 3, 16, 16], 2))
    data = upload_id(client, "images.zip", _image_folder_zip())
    spec = spec_for(teacher, data, student=student)
    spec["dataset"]["format"] = "imagefolder"
    body = assert_problem(client.post("/jobs", json=spec), 422, field=field)
    assert words in body["detail"], body["detail"]
    assert enqueued == []
    assert client.get("/jobs").json()["items"] == []
    # The same upload with a valid student is accepted and queued.
    spec["student"] = {"arch": "cnn", "options": {"width": 8}}
    assert client.post("/jobs", json=spec).status_code == 202
    assert len(enqueued) == 1
