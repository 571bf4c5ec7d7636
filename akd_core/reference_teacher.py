"""Train a teacher on a dataset from scratch and export it to ONNX (demo, tests, benchmarks)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from akd_core.data import Dataset, load_dataset
from akd_core.export import export_onnx
from akd_core.models import build_model
from akd_core.spec import DatasetSpec


def train_classifier(
    ds: Dataset,
    arch: str,
    options: dict[str, Any] | None = None,
    epochs: int = 30,
    seed: int = 0,
    lr: float = 3e-3,
    batch_size: int = 64,
    on_epoch: Callable[[int, int], None] | None = None,
) -> tuple[torch.nn.Module, float]:
    """Train `arch` with cross-entropy on ds.x_train (AdamW, cosine); returns (model, test acc).

    `on_epoch(done, epochs)` is called after each epoch (a progress bar).
    """
    torch.manual_seed(seed)
    model = build_model(arch, ds.input_shape, ds.num_classes, options or {}, field="teacher.arch")
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    steps = max(1, (len(x) + batch_size - 1) // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps)
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(steps):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples in train mode
                continue
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        if on_epoch is not None:
            on_epoch(epoch + 1, epochs)
    model.eval()
    with torch.no_grad():
        pred = model(torch.from_numpy(ds.x_test)).argmax(1)
    return model, float((pred.numpy() == ds.y_test).mean())


def make_reference_teacher(
    out_path: Path,
    dataset: DatasetSpec | None = None,
    arch: str = "cnn",
    options: dict[str, Any] | None = None,
    epochs: int = 30,
    seed: int = 0,
    on_epoch: Callable[[int, int], None] | None = None,
) -> tuple[Path, float]:
    """Train a teacher on the same preprocessing a job with `dataset` will use; save as ONNX."""
    from akd_core.pipeline import resolve_source

    # Same seed as the job -> same splits: the teacher never sees the job's test split.
    dataset = dataset or DatasetSpec(source="builtin:digits")
    ds = load_dataset(dataset, resolve_source(dataset.source, None, "dataset.source"), seed)
    model, acc = train_classifier(ds, arch, options, epochs, seed, on_epoch=on_epoch)
    meta = {"labels": str(ds.classes), "trained_by": "akd reference teacher"}
    export_onnx(model, ds.input_shape, Path(out_path), meta)
    return Path(out_path), acc
