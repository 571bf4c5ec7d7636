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
import onnx
import torch
from torch import nn

from akd_core.archives import ArchiveLimits, check_archive
from akd_core.data.teacher_normalize import declared_mean_std
from akd_core.errors import AKDError, TeacherLoadError
from akd_core.fileio import sha256_of
from akd_core.formats import infer_teacher_format
from akd_core.models.onnx_runner import (
    OnnxInput,
    make_session,
    numpy_dtype,
    run_batched,
    single_input,
)
from akd_core.models.onnx_runner import execution_provider as provider_of
from akd_core.models.registry import count_params
from akd_core.spec import TeacherSpec
from akd_core.teacher_check import check_teacher, short_message
from akd_core.teacher_weights import registry_model_with_weights
from akd_core.torchscript_check import check_scripted_module, refuse_load_time_code

if TYPE_CHECKING:
    from akd_core.sandbox.proxy import SandboxPolicy

__all__ = ["Teacher", "check_teacher", "load_teacher", "load_teacher_in_process", "open_teacher"]


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
    """An ONNX file run by onnxruntime (CPU, or CUDA when the device is cuda and available)."""

    def __init__(self, fingerprint: str, path: Path, device: torch.device, params: int) -> None:
        super().__init__("onnx", fingerprint, device)
        self.param_count = params
        # device.index: the job's card (cuda:N); a pinned worker's one card is cuda / index 0.
        self._session = make_session(
            path, use_cuda=device.type == "cuda", device_id=device.index or 0
        )
        self.declared_input = single_input(self._session)
        self.execution_provider = provider_of(self._session)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *input_shape) -> (B, K) float32 logits on x's device."""
        arr = x.detach().to("cpu", torch.float32).numpy()
        return torch.from_numpy(self.logits_for(arr, max(1, len(arr)))).to(x.device)

    def logits_for(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """(N, K) float32 logits for a whole array, computed `batch_size` rows at a time."""
        if self._session is None:
            raise RuntimeError("the teacher was released")
        return run_batched(self._session, x, batch_size)

    def release(self) -> None:
        """Free the model's memory; the teacher cannot predict afterwards."""
        self._session = None
        super().release()


def read_onnx_graph(path: Path) -> tuple[list[str], int, dict[str, str]]:
    """An ONNX teacher's graph inputs, parameter count and metadata; refuses external data."""
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types on corrupt bytes
        raise TeacherLoadError(
            f"{path.name!r} cannot be parsed as ONNX: {short_message(exc)}", field="teacher.source"
        ) from exc
    # External data would make onnxruntime read other files by a path the upload chose.
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise TeacherLoadError(
            f"{path.name!r} keeps its weights in external .data files; export it as one "
            "self-contained file (torch.onnx.export(..., external_data=False))",
            field="teacher.source",
        )
    init_names = {t.name for t in proto.graph.initializer}
    inputs = [i.name for i in proto.graph.input if i.name not in init_names]
    params = int(sum(np.prod(t.dims) for t in proto.graph.initializer))
    return inputs, params, {p.key: p.value for p in proto.metadata_props}


def _load_onnx(path: Path, fingerprint: str, device: torch.device) -> Teacher:
    inputs, params, metadata = read_onnx_graph(path)
    declared = declared_mean_std(metadata)
    if len(inputs) != 1:
        raise TeacherLoadError(
            f"the ONNX teacher has {len(inputs)} inputs ({', '.join(inputs) or 'none'}); "
            "exactly one input (the batch of samples) is supported"
            + (
                "; an ONNX text teacher (input_ids, attention_mask) distils into a text "
                "student: set student.arch to 'bert'"
                if "input_ids" in inputs
                else ""
            ),
            field="teacher.source",
        )
    try:
        teacher = OnnxTeacher(fingerprint, path, device, params)
    except Exception as exc:  # onnxruntime's errors have no common public base class
        raise TeacherLoadError(
            f"onnxruntime cannot load {path.name!r}: {short_message(exc)}", field="teacher.source"
        ) from exc
    teacher.declared_preprocessing = declared
    inp = teacher.declared_input
    if inp is not None and numpy_dtype(inp) is None:
        raise TeacherLoadError(
            f"the ONNX teacher's input {inp.name!r} is {inp.onnx_type}; only float inputs "
            "(images, features, signals) are supported",
            field="teacher.source",
        )
    return teacher


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


# The sandbox's name for an ONNX text teacher: a checked folder (one .onnx file + tokenizer).
ONNX_TEXT = "onnx-text"


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
    if fmt == "onnx":
        return _load_onnx(path, fingerprint, device)
    if fmt == "torchscript":
        return _load_torchscript(path, fingerprint, device, check_torchscript)
    if fmt == "safetensors":
        model = registry_model_with_weights(path, spec, input_shape, num_classes)
        return TorchTeacher("safetensors", fingerprint, model, device)
    if fmt == "hf":
        from akd_core.text.hf_teacher import HfTeacher  # imports transformers

        return HfTeacher(fingerprint, path, device)
    if fmt == ONNX_TEXT:
        from akd_core.text.onnx_teacher import OnnxTextTeacher  # preloaded by the sandbox

        return OnnxTextTeacher(fingerprint, next(path.glob("*.onnx")), device)
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
