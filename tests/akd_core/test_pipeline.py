"""run_job end to end on builtin:digits: outputs, resume equivalence, cache reuse, refusals."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import load_file

from akd_core.errors import JobCancelled, SpecError, TeacherLoadError, TrainingError
from akd_core.pipeline import run_job
from akd_core.spec import parse_spec

pytestmark = pytest.mark.slow


def _spec(teacher_path, **over):
    base = {
        "teacher": {"source": f"file:{teacher_path}"},
        "student": {"arch": "mlp", "options": {"hidden": [32]}},
        "dataset": {"source": "builtin:digits"},
        "annealing": {"tau_max": 2, "phase1_epochs": 4, "phase2_epochs": 2},
        "optimizer": {"batch_size": 128},
    }
    base.update(over)
    return parse_spec(base)


def test_outputs_follow_the_contract(digits_teacher, tmp_path):
    events = []
    report = run_job(_spec(digits_teacher, compare=["student"]), tmp_path, on_event=events.append)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["student"]["accuracy"] == report["student"]["accuracy"]
    assert report["teacher"]["accuracy"] > 0.9
    assert 0.5 < report["student"]["accuracy"] <= 1.0
    assert "accuracy" in report["baselines"]["student"]
    assert report["params"]["teacher"] > report["params"]["student"] > 0
    assert report["onnx"]["parity_max_abs_diff"] < 1e-4
    assert report["onnx"]["argmax_agreement"] == 1.0
    hist = report["history"]
    assert [h["phase"] for h in hist] == [1, 1, 1, 1, 2, 2]
    assert [h["phi"] for h in hist] == [0.5, 0.5, 1.0, 1.0, None, None]
    assert [h["T"] for h in hist] == [2, 2, 1, 1, None, None]
    assert all({"epoch", "train_loss", "val_accuracy"} <= h.keys() for h in hist)
    # One self-contained ONNX file with a dynamic batch axis and the preprocessing in metadata.
    assert not list(tmp_path.glob("*.data"))
    sess = ort.InferenceSession(str(tmp_path / "student.onnx"))
    meta = sess.get_modelmeta().custom_metadata_map
    assert json.loads(meta["input_shape"]) == [1, 8, 8]
    assert len(json.loads(meta["labels"])) == 10 and "preprocessing" in meta
    for n in (1, 5):
        out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((n, 1, 8, 8), np.float32)})[0]
        assert out.shape == (n, 10)
    assert (tmp_path / "report.md").read_text().startswith("# Distilled student")
    assert (tmp_path / "history.png").stat().st_size > 1000
    assert set(load_file(str(tmp_path / "student.safetensors")))
    stages = [e.stage for e in events if e.kind == "phase"]
    assert stages[:2] == ["loading", "caching_teacher"]
    assert {"annealing", "finetuning", "training", "exporting", "evaluating"} <= set(stages)
    epochs = [e for e in events if e.kind == "epoch"]
    assert len(epochs) == 12 and all(e.samples_per_s > 0 for e in epochs)
    assert events[-1].kind == "done" and events[-1].progress == 1.0


def test_resume_gives_the_same_student(digits_teacher, tmp_path):
    """Interrupted mid-epoch, resumed from the checkpoint: bit-identical student on CPU."""
    spec = _spec(digits_teacher, compare=["kd"])
    cache = tmp_path / "cache"
    run_job(spec, tmp_path / "straight", cache_dir=cache)

    calls = {"n": 0}

    def cancel_in_epoch_three():
        calls["n"] += 1
        return calls["n"] > 2 * 11 + 5  # digits train split: 11 steps per epoch at batch 128

    with pytest.raises(JobCancelled):
        run_job(spec, tmp_path / "resumed", cache_dir=cache, should_cancel=cancel_in_epoch_three)
    assert (tmp_path / "resumed" / "checkpoints" / "annealing.pt").exists()
    report = run_job(spec, tmp_path / "resumed", cache_dir=cache, resume=True)
    assert report["timings"]["teacher_cache_hit"] is True

    a = load_file(str(tmp_path / "straight" / "student.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "student.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    straight = json.loads((tmp_path / "straight" / "report.json").read_text())
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(report["history"]) == strip(straight["history"])
    assert report["baselines"]["kd"]["accuracy"] == straight["baselines"]["kd"]["accuracy"]

    # A checkpoint of another spec is never silently reused.
    other = _spec(digits_teacher, compare=["kd"], seed=1)
    with pytest.raises(SpecError, match="another spec") as err:
        run_job(other, tmp_path / "straight", cache_dir=cache, resume=True)
    assert err.value.field == "resume"


def test_random_augmentation_runs_the_teacher_per_batch(digits_teacher, tmp_path):
    spec = _spec(
        digits_teacher,
        dataset={"source": "builtin:digits", "augment": "crop-flip"},
        annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 1},
        compare=["kd"],
    )
    report = run_job(spec, tmp_path)
    assert len(report["history"]) == 2
    assert report["baselines"]["kd"]["accuracy"] > 0.1


def test_teacher_at_chance_stops_with_a_preprocessing_hint(tmp_path):
    import torch

    from akd_core.export import export_onnx
    from akd_core.models import build_model

    torch.manual_seed(0)
    untrained = build_model("mlp", (1, 8, 8), 10, {"hidden": [8]})
    with torch.no_grad():
        for p in untrained.parameters():
            p.zero_()
    path = export_onnx(untrained, (1, 8, 8), tmp_path / "t.onnx", {})
    with pytest.raises(TrainingError, match="preprocessing"):
        run_job(_spec(path), tmp_path / "out")


def test_teacher_with_wrong_class_count_fails_fast(tmp_path):
    from akd_core.export import export_onnx
    from akd_core.models import build_model

    path = export_onnx(build_model("mlp", (1, 8, 8), 7, {}), (1, 8, 8), tmp_path / "t.onnx", {})
    with pytest.raises(TeacherLoadError, match="7"):
        run_job(_spec(path), tmp_path / "out")


def test_safetensors_teacher_with_registry_arch(tmp_path):
    """A weights-only teacher is rebuilt from its registry arch for the dataset's shape."""
    from safetensors.torch import save_file

    from akd_core.data import load_dataset
    from akd_core.reference_teacher import train_classifier
    from akd_core.spec import DatasetSpec

    ds = load_dataset(DatasetSpec(source="builtin:digits"), None, 0)
    model, acc = train_classifier(ds, "mlp", {"hidden": [64]}, epochs=10)
    assert acc > 0.9
    path = tmp_path / "teacher.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    spec = _spec(
        path,
        teacher={
            "source": f"file:{path}",
            "format": "safetensors",
            "arch": "mlp",
            "arch_options": {"hidden": [64]},
        },
        annealing={"tau_max": 1, "phase1_epochs": 1, "phase2_epochs": 1},
    )
    report = run_job(spec, tmp_path / "out")
    assert report["teacher"]["format"] == "safetensors"
    assert report["teacher"]["accuracy"] == pytest.approx(acc, abs=1e-6)
    assert report["params"]["teacher"] > report["params"]["student"]
