"""Preprocessing a teacher declares itself (ONNX metadata mean/std), and adopting it.

When `dataset.normalize` is left out and the teacher's ONNX file says which mean and std
its input was normalised with, that is what turns the stored data into its input: the
splits are normalised with it, and the report and student.onnx state it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping

import numpy as np

from akd_core.data import normalize
from akd_core.data.dataset import Dataset
from akd_core.data.views import SplitView, renormalized
from akd_core.errors import DatasetError

# Metadata keys, in order of preference: plain, transformers' preprocessor names, AKD's own.
_KEY_PAIRS = (("mean", "std"), ("image_mean", "image_std"), ("normalize_mean", "normalize_std"))
MAX_VALUES = 64  # channels; a longer list is not a per-channel statistic
ORIGIN = "teacher ONNX metadata"


def _numbers(text: str) -> list[float] | None:
    """A list of finite floats from JSON ('[0.5, 0.5]') or comma-separated text, else None."""
    try:
        value = json.loads(text)
    except ValueError:
        value = [part.strip() for part in text.strip("[]() ").split(",")]
    if not isinstance(value, list) or not 0 < len(value) <= MAX_VALUES:
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def declared_mean_std(props: Mapping[str, str]) -> dict[str, list[float]] | None:
    """{'mean', 'std'} from an ONNX file's metadata_props, or None when it declares none."""
    pairs = [(props.get(m), props.get(s)) for m, s in _KEY_PAIRS]
    akd = props.get("preprocessing")  # a student.onnx made by AKD, used as a teacher
    if akd:
        try:
            record = json.loads(akd)
        except ValueError:
            record = None
        if isinstance(record, dict) and record.get("mean") is not None:
            pairs.append((json.dumps(record.get("mean")), json.dumps(record.get("std"))))
    for mean_text, std_text in pairs:
        if mean_text is None or std_text is None:
            continue
        mean, std = _numbers(mean_text), _numbers(std_text)
        if mean and std and len(mean) == len(std) and all(s > 0 for s in std):
            return {"mean": mean, "std": std}
    return None


def adopt_declared(
    ds: Dataset, setting: object, declared: dict[str, list[float]] | None
) -> Dataset:
    """`ds` normalised with the teacher's declared mean/std when the spec left normalize out."""
    if setting is not None or not declared:
        return ds  # the user's dataset.normalize wins; nothing declared: data as stored
    mean = np.asarray(declared["mean"], np.float64)
    std = np.asarray(declared["std"], np.float64)
    channels = ds.x_train.shape[1]
    if len(mean) != channels:
        raise DatasetError(
            f"the teacher's ONNX metadata declares a mean/std of {len(mean)} values but the "
            f"data has {channels} channels or features; set dataset.normalize to what the "
            "teacher expects ('none', 'train-mean-std' or an explicit mean and std)",
            field="dataset.normalize",
        )
    if ds.scale and mean.max() > 1.0:
        # Pixels are in [0, 1] here; a mean above 1 is in stored units (e.g. 0..255).
        mean, std = mean / ds.scale, std / ds.scale
    record = normalize.describe("explicit", mean, std, ds.scale, origin=ORIGIN)
    if isinstance(ds.x_train, SplitView):  # streamed: the splits' one decoder gains mean/std
        x_train, x_val, x_test = renormalized((ds.x_train, ds.x_val, ds.x_test), mean, std)
        return dataclasses.replace(ds, x_train=x_train, x_val=x_val, x_test=x_test,
                                   normalization=record)  # fmt: skip
    for x in (ds.x_train, ds.x_val, ds.x_test):
        normalize.apply(x, mean, std)  # the arrays are the dataset's own float32 copies
    return dataclasses.replace(ds, normalization=record)
