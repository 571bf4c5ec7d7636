"""The student's fixed input layer and the raw-input front, and the teacher's declared mean/std."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from akd_core.data import load_dataset
from akd_core.data.teacher_normalize import adopt_declared, declared_mean_std
from akd_core.errors import DatasetError, SpecError
from akd_core.models import build_model
from akd_core.models.input_layer import RawFront, with_input_layer
from akd_core.spec import DatasetSpec, parse_spec


def _x_train() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2, 4, 4)).astype(np.float32)
    return x * np.float32([[[[3.0]], [[0.5]]]]) + np.float32([[[[10.0]], [[-2.0]]]])


def test_input_layer_standardises_with_fixed_training_statistics() -> None:
    x = _x_train()
    torch.manual_seed(0)
    student = with_input_layer(build_model("mlp", (2, 4, 4), 3), x)
    np.testing.assert_allclose(student.input_layer.mean.flatten(), [10.0, -2.0], atol=0.3)
    inner = student.input_layer(torch.from_numpy(x))  # what the registry model sees
    np.testing.assert_allclose(inner.mean(dim=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(inner.std(dim=(0, 2, 3), unbiased=False), 1.0, atol=1e-4)
    # Buffers, not parameters: saved with the weights, never moved by the optimizer.
    assert {"input_layer.mean", "input_layer.std"} <= set(student.state_dict())
    assert not any(name.startswith("input_layer.") for name, _ in student.named_parameters())
    before = student.input_layer.mean.clone()
    opt = torch.optim.AdamW(student.parameters(), lr=0.1, weight_decay=0.5)
    student(torch.from_numpy(x)).sum().backward()
    opt.step()
    assert torch.equal(student.input_layer.mean, before)


def test_raw_front_turns_nhwc_uint8_into_the_teachers_input() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, size=(5, 4, 4, 3), dtype=np.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    front = RawFront(4, channels_last=True, scale=255.0, mean=mean, std=std)
    out = front(torch.from_numpy(pixels)).numpy()
    want = (pixels.transpose(0, 3, 1, 2) / 255.0 - np.reshape(mean, (1, 3, 1, 1))) / np.reshape(
        std, (1, 3, 1, 1)
    )
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "props,want",
    [
        ({"mean": "[0.5, 0.25]", "std": "[0.1, 0.2]"}, {"mean": [0.5, 0.25], "std": [0.1, 0.2]}),
        ({"mean": "0.5,0.25", "std": "0.1, 0.2"}, {"mean": [0.5, 0.25], "std": [0.1, 0.2]}),
        ({"image_mean": "[0.5]", "image_std": "[0.5]"}, {"mean": [0.5], "std": [0.5]}),
        (
            {"preprocessing": '{"mode": "explicit", "mean": [1.0], "std": [2.0]}'},
            {"mean": [1.0], "std": [2.0]},
        ),
        ({"preprocessing": '{"mode": "none", "mean": null, "std": null}'}, None),
        ({"mean": "[0.5]", "std": "[0]"}, None),  # a zero std is not a normalisation
        ({"mean": "[0.5, 0.5]", "std": "[0.5]"}, None),  # lengths differ
        ({"mean": "nan", "std": "[1]"}, None),
        ({"mean": "[0.5]"}, None),
        ({"labels": '["a", "b"]'}, None),
    ],
)
def test_declared_mean_std_is_read_from_onnx_metadata(props, want) -> None:
    assert declared_mean_std(props) == want


@pytest.mark.parametrize("value", ["yes", 1, "true", None])
def test_raw_input_must_be_a_boolean(value) -> None:
    spec = {
        "teacher": {"source": "upload:abc", "format": "onnx"},
        "student": {"arch": "mlp"},
        "dataset": {"source": "builtin:digits"},
        "export": {"raw_input": value},
    }
    with pytest.raises(SpecError, match="valid boolean") as info:
        parse_spec(spec)
    assert info.value.field == "export.raw_input"


def _digits():
    return load_dataset(DatasetSpec(source="builtin:digits"), None, seed=0)


def test_declared_mean_std_in_stored_units_is_converted_and_applied() -> None:
    ds = _digits()  # stored 0..16, scaled into [0, 1]
    stored = ds.x_test * 16.0
    adopted = adopt_declared(ds, None, {"mean": [8.0], "std": [4.0]})  # in 0..16 units
    np.testing.assert_allclose(adopted.x_test, (stored - 8.0) / 4.0, atol=1e-5)
    assert adopted.normalization["origin"] == "teacher ONNX metadata"
    assert adopted.normalization["mean"] == [0.5] and adopted.normalization["std"] == [0.25]


def test_declared_mean_std_is_ignored_when_the_spec_names_normalize() -> None:
    ds = _digits()
    assert adopt_declared(ds, "none", {"mean": [0.5], "std": [0.5]}) is ds


def test_declared_mean_std_of_other_channel_count_is_refused() -> None:
    with pytest.raises(
        DatasetError, match="declares a mean/std of 3 values but the data has 1"
    ) as info:
        adopt_declared(_digits(), None, {"mean": [0.5] * 3, "std": [0.2] * 3})
    assert info.value.field == "dataset.normalize"
