"""Students for the INT8 and latency tests: exported through the real write_outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from akd_core.data import Dataset, load_dataset
from akd_core.models import build_model
from akd_core.models.input_layer import StudentWithInput, with_input_layer
from akd_core.spec import parse_spec
from tests.akd_core.report_support import write_with_facts


def digits() -> Dataset:
    """builtin:digits as a job loads it (seed 0)."""
    spec = parse_spec({"teacher": {"source": "upload:0123abcd", "format": "onnx"},
                       "student": {"arch": "mlp"}, "dataset": {"source": "builtin:digits"}})  # fmt: skip
    return load_dataset(spec.dataset, None, spec.seed)


def student(arch: str, ds: Dataset, options: dict[str, Any] | None = None) -> StudentWithInput:
    """An untrained registry student behind its input layer (seed 0)."""
    torch.manual_seed(0)
    return with_input_layer(build_model(arch, ds.input_shape, ds.num_classes, options), ds.x_train)


def fit(model: torch.nn.Module, ds: Dataset, steps: int) -> torch.nn.Module:
    """Full-batch Adam on the training split: a few hundred steps make a linear model good."""
    opt = torch.optim.Adam(model.parameters(), 0.05)
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def export_report(
    out_dir: Path, model: torch.nn.Module, ds: Dataset, arch: str = "mlp", **export: Any
) -> dict[str, Any]:
    """write_outputs for `model` on digits with `export` options; report.json's dict."""
    spec = parse_spec({"teacher": {"source": "upload:0123abcd", "format": "onnx"},
                       "student": {"arch": arch}, "dataset": {"source": "builtin:digits"},
                       "export": export})  # fmt: skip
    return write_with_facts(out_dir, spec, ds, model, ("annealing",))
