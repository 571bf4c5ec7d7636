"""POST /jobs compares an ONNX teacher's declared shapes with the dataset before a job is queued."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_support import (
    assert_problem,
    digits_onnx_bytes,
    npz_bytes,
    onnx_classifier_bytes,
    spec_for,
    upload_id,
)

from akd_core.errors import TeacherLoadError
from akd_core.onnx_shapes import read_declared_shapes


def _digits_spec(teacher: str) -> dict:
    return {
        "teacher": {"source": f"upload:{teacher}", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
    }


def test_a_teacher_with_the_wrong_class_count_is_422_and_nothing_is_queued(client, enqueued):
    teacher = upload_id(client, "t3.onnx", onnx_classifier_bytes(["N", 1, 8, 8], 3))
    body = assert_problem(client.post("/jobs", json=_digits_spec(teacher)), 422, "teacher.source")
    assert "expected (batch, 10) logits for 10 classes" in body["detail"]
    assert "the teacher declares (?, 3)" in body["detail"]
    assert enqueued == [] and client.get("/jobs").json()["items"] == []
    # Nothing stored is lost: the same teacher upload fits a 3-class dataset of its input shape.
    data = upload_id(client, "d.npz", _digits_like_npz(classes=3))
    assert client.post("/jobs", json=spec_for(teacher, data)).status_code == 202
    assert len(enqueued) == 1


@pytest.mark.parametrize(
    ("dims", "declared"),
    [(["N", 1, 28, 28], "(?, 1, 28, 28)"), (["N", 64], "(?, 64)"), (["N", 8, 8], "(?, 8, 8)")],
)
def test_a_teacher_that_takes_another_input_shape_is_422(client, enqueued, dims, declared):
    teacher = upload_id(client, "t.onnx", onnx_classifier_bytes(dims, 10))
    body = assert_problem(client.post("/jobs", json=_digits_spec(teacher)), 422, "teacher.source")
    assert "expected an input of shape (?, 1, 8, 8)" in body["detail"]
    assert f"the teacher declares {declared}" in body["detail"]
    assert enqueued == []


def test_symbolic_and_dynamic_dimensions_are_accepted(client, enqueued):
    symbolic = onnx_classifier_bytes(["N", "C", "H", "W"], "K", features=64)
    for data in (symbolic, digits_onnx_bytes(), onnx_classifier_bytes([1, 1, 8, 8], 10)):
        teacher = upload_id(client, "t.onnx", data)  # a fixed batch of 1 is fed row by row
        r = client.post("/jobs", json=_digits_spec(teacher))
        assert r.status_code == 202, r.text
    assert len(enqueued) == 3


def test_an_uploaded_npz_sets_the_expected_shape_and_classes(client, enqueued):
    data = upload_id(client, "d.npz", npz_bytes())  # 40 samples of 4 features, 3 classes
    wrong = upload_id(client, "t.onnx", onnx_classifier_bytes(["N", 4], 5))
    body = assert_problem(client.post("/jobs", json=spec_for(wrong, data)), 422, "teacher.source")
    assert "expected (batch, 3) logits" in body["detail"]
    assert enqueued == []


def test_a_garbage_onnx_upload_is_refused_clearly_and_kept(client, enqueued):
    junk = b"\x08\x07\x12\x04junk" + bytes(range(256)) * 4  # starts like a ModelProto
    teacher = upload_id(client, "teacher.onnx", junk)
    body = assert_problem(client.post("/jobs", json=_digits_spec(teacher)), 422)
    assert body["field"] in ("teacher.format", "teacher.source")
    assert "teacher.onnx" in body["detail"] and "onnx" in body["detail"]
    assert enqueued == []


def test_reading_a_file_that_does_not_parse_names_the_teacher(tmp_path: Path):
    path = tmp_path / "t.onnx"
    path.write_bytes(b"\x08\x07\x12\xff\xff\xff\xff\x0f" + b"\x00" * 64)  # a length past the end
    with pytest.raises(TeacherLoadError) as err:
        read_declared_shapes(path)
    assert err.value.field == "teacher.source"
    assert "not a readable ONNX model" in err.value.message


def test_weights_listed_as_graph_inputs_do_not_hide_the_data_input(tmp_path: Path):
    """Exports with IR < 4 list every initializer among the graph's inputs too."""
    import onnx

    model = onnx.load_from_string(onnx_classifier_bytes(["N", 1, 8, 8], 3))
    model.graph.input.append(
        onnx.helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, [64, 3])
    )
    path = tmp_path / "old.onnx"
    path.write_bytes(model.SerializeToString())
    declared = read_declared_shapes(path)
    assert declared is not None
    assert declared.input == (None, 1, 8, 8) and declared.output == (None, 3)


def _digits_like_npz(classes: int) -> bytes:
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, x=np.zeros((30, 1, 8, 8), np.float32), y=np.arange(30) % classes)
    return buf.getvalue()


def test_reading_the_teacher_shapes_keeps_torch_out_of_the_api(tmp_path: Path):
    import subprocess
    import sys

    teacher = tmp_path / "t.onnx"
    teacher.write_bytes(digits_onnx_bytes())
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from app.api.checks import check_onnx_teacher_shapes\n"
        "from akd_core.spec import parse_spec\n"
        "spec = parse_spec({'teacher': {'source': 'upload:x', 'format': 'onnx'},\n"
        "                   'student': {'arch': 'mlp'}, 'dataset': {'source': 'builtin:digits'}})\n"
        f"check_onnx_teacher_shapes(spec, Path({str(teacher)!r}), None, None)\n"
        "assert 'onnx' in sys.modules and 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
