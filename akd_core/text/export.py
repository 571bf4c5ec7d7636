"""Text outputs: student.onnx (input_ids, attention_mask[, token_type_ids]; dynamic batch and
sequence axes), its parity on the test split at varied lengths, latency, tokenizer/ and student_hf/."""

from __future__ import annotations

import copy
import logging
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from akd_core.export import OUTPUT_NAME, _set_metadata
from akd_core.fileio import atomic_write
from akd_core.latency import BUDGET_S, THREADS, WARMUP_RUNS, time_feed, timing_session
from akd_core.models.onnx_runner import make_session
from akd_core.text.batches import split_batch
from akd_core.text.hf_quiet import transformers_quiet
from akd_core.text.students import TokenClassifier

TOKENIZER_DIR = "tokenizer"
STUDENT_HF_DIR = "student_hf"
LATENCY_LENGTHS = (32, 128)
PARITY_BATCH = 16

log = logging.getLogger(__name__)


class _NamedInputs(nn.Module):
    """The student with one graph input per tensor, as a deployment calls it."""

    def __init__(self, hf: nn.Module, names: tuple[str, ...]) -> None:
        super().__init__()
        self.hf, self.names = hf, names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.hf(**dict(zip(self.names, tensors, strict=True))).logits


def export_text_onnx(student: TokenClassifier, names: tuple[str, ...], path: Path,
                     metadata: dict[str, str], opset: int) -> Path:  # fmt: skip
    """One self-contained ONNX file taking int64 (batch, sequence) inputs named after the tokenizer."""
    model = _NamedInputs(copy.deepcopy(student.hf).cpu().eval(), names)
    example = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    axes[OUTPUT_NAME] = {0: "batch"}
    buf = path.with_name(f".{path.name}.export")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings
        # The TorchScript-based exporter traces the attention masks of every transformers
        # family here with symbolic batch and sequence sizes.
        torch.onnx.export(model, example, str(buf), input_names=list(names),
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset,
                          dynamo=False)  # fmt: skip
    proto = onnx.load(str(buf))
    buf.unlink(missing_ok=True)
    _set_metadata(proto, metadata)
    onnx.checker.check_model(proto)
    return atomic_write(path, lambda tmp: onnx.save_model(proto, str(tmp)))


def _batches(x: np.ndarray) -> list[np.ndarray]:
    """Test batches trimmed to their own longest row: varied sequence lengths."""
    out = []
    for i in range(0, len(x), PARITY_BATCH):
        xb = torch.from_numpy(x[i : i + PARITY_BATCH])
        trimmed = split_batch(xb, trim=True)["input_ids"].shape[1]
        out.append(x[i : i + PARITY_BATCH, :, :trimmed])
    return out


def text_parity(path: Path, student: TokenClassifier, x: np.ndarray, names: tuple[str, ...]
                ) -> dict[str, Any]:  # fmt: skip
    """onnxruntime vs torch on the test split: max |logit diff|, argmax agreement, lengths seen."""
    session = make_session(path)
    model = copy.deepcopy(student).cpu().eval()
    diffs, agree, lengths = [], [], set()
    with torch.no_grad():
        for xb in _batches(x):
            ort = session.run(None, {n: xb[:, i] for i, n in enumerate(names)})[0]
            ref = model(torch.from_numpy(np.ascontiguousarray(xb))).float().numpy()
            diffs.append(float(np.max(np.abs(ort - ref))))
            agree.extend((ort.argmax(1) == ref.argmax(1)).tolist())
            lengths.add(int(xb.shape[-1]))
    return {
        "max_abs_diff": max(diffs, default=0.0),
        "argmax_agreement": float(np.mean(agree)) if agree else 1.0,
        "sequence_lengths": sorted(lengths),
    }


def text_predictions(path: Path, x: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """The ONNX student's predicted class of every row of a token split, batch by batch."""
    session = make_session(path)
    preds = [session.run(None, {n: xb[:, i] for i, n in enumerate(names)})[0].argmax(1)
             for xb in _batches(x)]  # fmt: skip
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)


def text_onnx_accuracy(path: Path, x: np.ndarray, y: np.ndarray, names: tuple[str, ...]) -> float:
    """Top-1 accuracy of the ONNX student on token splits, batch by batch."""
    pred = text_predictions(path, x, names)
    return float(np.mean(pred == y)) if len(pred) else 0.0


def text_feed_of_length(names: tuple[str, ...], length: int) -> dict[str, np.ndarray]:
    """One text of `length` tokens (batch 1) as student.onnx takes it: ids, full mask, type 0."""
    feed = {n: np.ones((1, length), np.int64) for n in names}
    if "token_type_ids" in feed:
        feed["token_type_ids"] = np.zeros((1, length), np.int64)
    return feed


def text_latency(path: Path, names: tuple[str, ...], lengths: tuple[int, ...],
                 budget_s: float = BUDGET_S) -> dict[str, Any]:  # fmt: skip
    """CPU latency of one text at each length, timed as akd_core.latency times every model:
    THREADS intra-op threads, warm-up, median and p90 within the budget shared by the lengths."""
    session = timing_session(path, THREADS)
    share = budget_s / max(1, len(lengths))
    by_length = {}
    for n in lengths:
        b = time_feed(session, text_feed_of_length(names, n), share)
        by_length[str(n)] = {"median_ms": b.median_ms, "p90_ms": b.p90_ms, "runs": b.runs}
    return {"threads": THREADS, "warmup_runs": WARMUP_RUNS, "budget_s": budget_s,
            "batch": 1, "by_length": by_length}  # fmt: skip


def zip_dir(src: Path, dest: Path) -> Path:
    """The folder's files in one zip (names relative to the folder), written atomically."""

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(src.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(src).as_posix())

    return atomic_write(dest, write)


def write_hf_folders(out_dir: Path, student: TokenClassifier, tokenizer: Any,
                     x_check: np.ndarray) -> dict[str, Any]:  # fmt: skip
    """tokenizer/ and student_hf/ (model + tokenizer); student_hf reloaded and compared."""
    auto_model = transformers_quiet().AutoModelForSequenceClassification

    for name in (TOKENIZER_DIR, STUDENT_HF_DIR):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    tokenizer.save_pretrained(str(out_dir / TOKENIZER_DIR))
    hf: Any = copy.deepcopy(student.hf).cpu().eval()
    hf.save_pretrained(str(out_dir / STUDENT_HF_DIR), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir / STUDENT_HF_DIR))
    reloaded = auto_model.from_pretrained(
        str(out_dir / STUDENT_HF_DIR), local_files_only=True, trust_remote_code=False,
        use_safetensors=True,
    ).eval()  # fmt: skip
    xb = torch.from_numpy(np.ascontiguousarray(x_check[:PARITY_BATCH]))
    with torch.no_grad():
        a = hf(**split_batch(xb)).logits
        b = reloaded(**split_batch(xb)).logits
    # One file each for downloads (the API's artifacts are files): tokenizer.zip, student_hf.zip.
    for name in (TOKENIZER_DIR, STUDENT_HF_DIR):
        zip_dir(out_dir / name, out_dir / f"{name}.zip")
    return {
        "tokenizer_dir": TOKENIZER_DIR,
        "tokenizer_zip": f"{TOKENIZER_DIR}.zip",
        "student_hf_zip": f"{STUDENT_HF_DIR}.zip",
        "student_hf_dir": STUDENT_HF_DIR,
        "student_hf_reload_max_abs_diff": float((a - b).abs().max()) if len(xb) else 0.0,
    }
