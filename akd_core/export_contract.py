"""The input contract of student.onnx: what it takes, and the module and arrays that match it.

By default the student takes exactly the teacher's input (name, dtype, layout, range): the
arrays the teacher was fed. With `export.raw_input` it takes the data as stored instead
(uint8 NHWC pixels for images, raw features for arrays) and the graph does the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from akd_core.data import Dataset
from akd_core.models.input_layer import RawFront, RawInputStudent, Standardize

DEFAULT_INPUT_NAME = "input"
_LAYOUTS = {2: "NC", 3: "NCL", 4: "NCHW"}  # teacher-input layouts by batch rank
Split = Literal["val", "test"]


@dataclass(frozen=True)
class InputContract:
    """What student.onnx takes, stated for report.json and the ONNX metadata."""

    name: str
    dtype: str  # numpy name: float32 or uint8
    layout: str  # NCHW, NHWC, NC (features) or NCL (signals); N is the dynamic batch axis
    shape: list[int]  # one sample's shape in that layout
    value_range: list[float]  # [low, high] of the values the student expects
    value_range_source: str  # "nominal" or where the range was observed
    raw_input: bool  # True: all preprocessing is in the graph (export.raw_input)
    # dataset.normalize: what turns stored data into the teacher's input. Outside the graph
    # (the caller's pipeline does it, as for the teacher) unless raw_input.
    normalize: dict[str, Any]
    standardize: dict[str, list[float]]  # the student's own fixed input layer, in the graph
    steps_in_graph: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _channels_last(ds: Dataset) -> bool:
    return ds.kind == "image" and len(ds.input_shape) == 3


def _stored_uint8(ds: Dataset) -> bool:
    return ds.stored_test is not None and ds.stored_test.dtype == np.uint8


def _raw_dtype(ds: Dataset) -> str:
    return "uint8" if _stored_uint8(ds) else "float32"


def _raw_shape(ds: Dataset) -> list[int]:
    shape = list(ds.input_shape)
    return [*shape[1:], shape[0]] if _channels_last(ds) else shape


def _teacher_range(ds: Dataset) -> tuple[list[float], str]:
    if ds.scale and ds.normalization.get("mode") == "none":
        return [0.0, 1.0], "nominal"  # pixels scaled into [0, 1]
    return [float(ds.x_train.min()), float(ds.x_train.max())], "observed on the training split"


def _raw_range(ds: Dataset) -> tuple[list[float], str]:
    if ds.scale:
        return [0.0, float(ds.scale)], "nominal"
    parts = [a for a in (ds.stored_val, ds.stored_test) if a is not None and a.size]
    lo = min(float(a.min()) for a in parts)
    hi = max(float(a.max()) for a in parts)
    return [lo, hi], "observed on the stored validation and test splits"


def _raw_steps(ds: Dataset) -> list[str]:
    steps = ["cast to float32"]
    if ds.scale:
        steps.append(f"divide by {ds.scale:g}")
    if _channels_last(ds):
        steps.append("NHWC -> NCHW")
    if ds.normalization.get("mean") is not None:
        steps.append(f"dataset.normalize ({ds.normalization['mode']}) mean/std")
    return steps


def _standardize_of(student: nn.Module) -> dict[str, list[float]]:
    layer = getattr(student, "input_layer", None)
    if not isinstance(layer, Standardize):
        return {"mean": [], "std": []}
    return {"mean": layer.mean.flatten().tolist(), "std": layer.std.flatten().tolist()}


def input_contract(
    ds: Dataset, student: nn.Module, raw_input: bool, input_name: str | None
) -> InputContract:
    """The contract of the exported student, given the data and the teacher's input name."""
    standardize = _standardize_of(student)
    own = ["standardise with training-split mean/std"] if standardize["mean"] else []
    if raw_input:
        low_high, source = _raw_range(ds)
        return InputContract(
            name=input_name or DEFAULT_INPUT_NAME,
            dtype=_raw_dtype(ds),
            layout="NHWC" if _channels_last(ds) else _LAYOUTS[len(ds.input_shape) + 1],
            shape=_raw_shape(ds),
            value_range=low_high,
            value_range_source=source,
            raw_input=True,
            normalize=ds.normalization,
            standardize=standardize,
            steps_in_graph=[*_raw_steps(ds), *own],
        )
    low_high, source = _teacher_range(ds)
    return InputContract(
        name=input_name or DEFAULT_INPUT_NAME,
        dtype="float32",
        layout=_LAYOUTS[len(ds.input_shape) + 1],
        shape=list(ds.input_shape),
        value_range=low_high,
        value_range_source=source,
        raw_input=False,
        normalize=ds.normalization,
        standardize=standardize,
        steps_in_graph=own,
    )


def deployable(student: nn.Module, ds: Dataset, contract: InputContract) -> nn.Module:
    """The module that is exported: the student, behind RawFront when the input is raw."""
    if not contract.raw_input:
        return student
    norm = ds.normalization
    front = RawFront(
        len(ds.input_shape) + 1, _channels_last(ds), ds.scale, norm.get("mean"), norm.get("std")
    )
    return RawInputStudent(front, student)


def contract_inputs(ds: Dataset, contract: InputContract, split: Split) -> np.ndarray:
    """The `split` samples as the exported student takes them (for parity and accuracy)."""
    if not contract.raw_input:
        return ds.x_val if split == "val" else ds.x_test
    stored = ds.stored_val if split == "val" else ds.stored_test
    if stored is None:
        raise ValueError("the dataset kept no stored splits; raw-input checks need them")
    x = stored.transpose(0, 2, 3, 1) if _channels_last(ds) else stored
    return np.ascontiguousarray(x, dtype=np.uint8 if _stored_uint8(ds) else np.float32)


def example_dtype(contract: InputContract) -> torch.dtype:
    """The torch dtype of the exported input."""
    return torch.uint8 if contract.dtype == "uint8" else torch.float32
