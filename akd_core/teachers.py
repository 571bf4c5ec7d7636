"""The one loader for untrusted teacher files: ONNX, TorchScript, or safetensors + a registry arch.

Nothing here unpickles: the file's bytes are sniffed first (`infer_teacher_format`), so a
torch.save pickle is refused before any loader opens it. TorchScript goes through
torch.jit.load only, after its code was read for load-time hooks, and its graphs must pass
the allow-list (`akd_core.torchscript_check`); safetensors holds raw tensors. There is no
torch.load in this module. `load_teacher` runs every format in a confined child process
(`akd_core.sandbox`); `open_teacher` is what that process runs.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from akd_core.archives import ArchiveLimits, check_archive
from akd_core.errors import AKDError, TeacherLoadError, short_message
from akd_core.fileio import sha256_of
from akd_core.formats import infer_teacher_format
from akd_core.models.onnx_runner import OnnxInput
from akd_core.models.registry import count_params
from akd_core.onnx_classifier import ONNX_FORMATS, ONNX_TEXT, OnnxModel, open_onnx_model
from akd_core.spec import TeacherSpec
from akd_core.teacher_check import check_teacher
from akd_core.teacher_weights import registry_model_with_weights
from akd_core.torchscript_check import check_scripted_module, refuse_load_time_code

if TYPE_CHECKING:
    from akd_core.sandbox.proxy import SandboxPolicy

__all__ = [
    "Teacher",
    "check_teacher",
    "load_teacher",
    "load_teacher_in_process",
    "open_teacher",
]


class Teacher:
    """A frozen classifier: `predict` gives (B, K) float32 logits, always in eval mode, no grad."""

    module: nn.Module | None = None  # the nn.Module of an in-process torch teacher, else None
    declared_input: OnnxInput | None = None  # what an ONNX file says it takes
    # {"mean", "std"} an ONNX file's metadata declares for its input (None: it says nothing)
    declared_preprocessing: dict[str, list[float]] | None = None
    param_count: int | None = None  # parameters of the model, for the report
    # ONNX teachers: the onnxruntime provider that runs them (CUDAExecutionProvider or CPU...)
    execution_provider: str | None = None

    def __init__(self, fmt: str, fingerprint: str, device: torch.device) -> None:
        self.format = fmt
        self.fingerprint = fingerprint
        self.device = device

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, K) float32 logits on x's device."""
        raise NotImplementedError

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, K) float32 logits for a whole array, computed `batch_size` rows at a time."""
        parts = [
            self.predict(torch.from_numpy(np.ascontiguousarray(x[i : i + batch_size])))
            .cpu()
            .numpy()
            for i in range(0, len(x), max(1, batch_size))
        ]
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def release(self) -> None:
        """Free the model's memory; the teacher cannot predict afterwards."""
        gc.collect()
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()


class TorchTeacher(Teacher):
    """A TorchScript module or a registry model with safetensors weights."""

    def __init__(self, fmt: str, fingerprint: str, module: nn.Module, device: torch.device) -> None:
        super().__init__(fmt, fingerprint, device)
        module = module.to(device)
        module.eval()  # BatchNorm uses its running statistics and never updates them
        for p in module.parameters():
            p.requires_grad_(False)
        self.module = module
        self.param_count = count_params(module)
        floats = [p.dtype for p in module.parameters() if p.is_floating_point()]
        self._dtype = floats[0] if floats else torch.float32

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, K) float32 logits on x's device."""
        if self.module is None:
            raise RuntimeError("the teacher was released")
        # no_grad rather than inference_mode: the logits become loss targets next to
        # tensors that require grad, which inference tensors may not.
        with torch.no_grad():
            out = self.module(x.to(self.device, self._dtype))
        return _logits_tensor(out).float().to(x.device)

    def release(self) -> None:
        """Free the model's memory; the teacher cannot predict afterwards."""
        self.module = None
        super().release()


def _logits_tensor(out: object) -> torch.Tensor:
    # TorchScript models may return a tuple or a dict (e.g. {"logits": ...}); take the logits.
    if isinstance(out, dict) and "logits" in out:
        out = out["logits"]
    elif isinstance(out, tuple | list) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise TeacherLoadError(
            f"the teacher returned {type(out).__name__}, not a tensor of logits; "
            "export a model whose forward returns (B, K) logits",
            field="teacher.source",
        )
    return out


class OnnxTeacher(Teacher):
    """An ONNX model (akd_core.onnx_classifier, run by onnxruntime) as a Teacher of tensors."""

    def __init__(self, fingerprint: str, model: OnnxModel, device: torch.device) -> None:
        super().__init__(model.format, fingerprint, device)
        self.model = model
        self.param_count, self.declared_input = model.param_count, model.declared_input
        self.declared_preprocessing = model.declared_preprocessing
        self.execution_provider = model.execution_provider

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, K) float32 logits on x's device."""
        arr = x.detach().cpu()  # floats as float32 (bf16 has no numpy); text tokens as they are
        arr = arr.float() if arr.is_floating_point() else arr
        return torch.from_numpy(self.logits_for(arr.numpy(), max(1, len(arr)))).to(x.device)

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, K) float32 logits for a whole array, computed `batch_size` rows at a time."""
        return self.model.logits_for(x, batch_size)

    def release(self) -> None:
        """Free the model's memory; the teacher cannot predict afterwards."""
        self.model.release()
        super().release()


def _precheck_torchscript(path: Path, check_code: bool) -> None:
    """Member caps (bombs, links), then no load-time code: all before torch opens the file."""
    try:
        check_archive(path, ArchiveLimits())
    except AKDError as exc:
        raise TeacherLoadError(
            f"{path.name!r} was refused: {exc.message}", field="teacher.source"
        ) from exc
    if check_code:
        refuse_load_time_code(path)


def _load_torchscript(
    path: Path, fingerprint: str, device: torch.device, check_code: bool
) -> Teacher:
    _precheck_torchscript(path, check_code)
    try:
        module = torch.jit.load(str(path), map_location=device)
    except Exception as exc:  # torch.jit.load raises RuntimeError or C++ errors on bad archives
        raise TeacherLoadError(
            f"{path.name!r} is not a loadable TorchScript archive: {short_message(exc)}; save the "
            "teacher with torch.jit.save(torch.jit.script(model) or torch.jit.trace(model, x))",
            field="teacher.source",
        ) from exc
    if check_code:
        check_scripted_module(module)
    return TorchTeacher("torchscript", fingerprint, module, device)


def _identify(spec: TeacherSpec, path: Path, check_code: bool) -> tuple[str, str]:
    """The teacher's format (refusing pickles and hf) and its fingerprint (sha256)."""
    if spec.format == "onnx" and path.is_dir():  # unpacked and checked by the text pipeline
        from akd_core.text.hf_folder import check_folder, folder_fingerprint

        check_folder(path, "onnx")
        return ONNX_TEXT, folder_fingerprint(path)
    fmt = infer_teacher_format(path, spec.format)  # refuses pickles before anything opens them
    if fmt == "hf":
        if not path.is_dir():  # the text pipeline unpacks and checks it first (text.hf_folder)
            raise TeacherLoadError(
                "an 'hf' teacher (a transformers model folder) distils into a text student on "
                "text data: set student.arch to 'bert' or 'shrink-teacher' and give a csv or "
                "jsonl dataset",
                field="student.arch",
            )
        from akd_core.text.hf_folder import check_folder, folder_fingerprint

        check_folder(path)
        return fmt, folder_fingerprint(path)
    if fmt == "torchscript":
        _precheck_torchscript(path, check_code)  # a clear refusal without starting a process
    return fmt, sha256_of(path)


def open_teacher(
    fmt: str,
    path: Path,
    fingerprint: str,
    device: torch.device,
    spec: TeacherSpec,
    input_shape: tuple[int, ...] | None,
    num_classes: int | None,
    *,
    check_torchscript: bool = True,
) -> Teacher:
    """Load a teacher of a known format in this process (the sandbox's child runs this)."""
    if fmt in ONNX_FORMATS:  # the image/feature classifier, or an ONNX text folder
        return OnnxTeacher(fingerprint, open_onnx_model(fmt, path, str(device)), device)
    if fmt == "torchscript":
        return _load_torchscript(path, fingerprint, device, check_torchscript)
    if fmt == "safetensors":
        model = registry_model_with_weights(path, spec, input_shape, num_classes)
        return TorchTeacher("safetensors", fingerprint, model, device)
    if fmt == "hf":
        from akd_core.text.hf_teacher import HfTeacher  # imports transformers

        return HfTeacher(fingerprint, path, device)
    raise TeacherLoadError(f"unsupported teacher format {fmt!r}", field="teacher.format")


def load_teacher(
    spec: TeacherSpec,
    path: Path,
    device: torch.device,
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    sandbox: SandboxPolicy | None = None,
) -> Teacher:
    """Load an untrusted teacher file in a confined child process, frozen and in eval mode.

    `input_shape` and `num_classes` (the dataset's) are needed to build the registry
    architecture of a safetensors teacher; the other formats carry their own graph.
    """
    from akd_core.sandbox.proxy import SandboxPolicy, start_teacher  # the proxy subclasses Teacher

    policy = sandbox or SandboxPolicy()
    path = Path(path)
    fmt, fingerprint = _identify(spec, path, policy.check_torchscript)
    return start_teacher(fmt, path, fingerprint, device, spec, input_shape, num_classes, policy)


def load_teacher_in_process(
    spec: TeacherSpec,
    path: Path,
    device: torch.device,
    *,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
) -> Teacher:
    """Load a teacher in this process, with every check but no sandbox: trusted files only."""
    path = Path(path)
    fmt, fingerprint = _identify(spec, path, True)
    return open_teacher(fmt, path, fingerprint, device, spec, input_shape, num_classes)
