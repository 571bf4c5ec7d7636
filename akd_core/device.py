"""Device selection, mixed-precision policy and data placement."""

from __future__ import annotations

import logging
import os
from typing import Any

import torch
from torch import nn

from akd_core.errors import SpecError

log = logging.getLogger(__name__)

# Native bf16 tensor-core math starts with Ampere (compute capability 8.0); older cards
# (V100 7.0, T4 7.5) emulate it slowly, so they get fp16 with loss scaling instead.
BF16_MIN_CAPABILITY = (8, 0)

# Datasets up to this size live on the GPU for the whole run; larger ones are paged per batch.
GPU_RESIDENT_BYTES = 4 * 1024**3


def inference_batch_size(device: torch.device) -> int:
    """Batch for eval-only passes: large on a GPU; on CPU 128 keeps activations in cache
    (ResNet-56 over 1024 images here: 2.3 s at batch 128, 4.1 s at 512)."""
    return 1024 if device.type == "cuda" else 128


def select_device(name: str) -> torch.device:
    """`auto` -> CUDA when present, else CPU; `cuda` or `cuda:N` without that GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise SpecError(
            f"unknown device {name!r}; choose auto, cpu, cuda or cuda:N", field="device"
        )
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0 or (index and int(index) >= count):
        raise SpecError(
            f"device {name!r} was asked for but {count} GPU(s) are visible; use auto or cpu",
            field="device",
        )
    return torch.device(name)


def amp_dtype_for(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 autocast on the job's GPU when its compute capability is 8.0 or more, fp16 (with
    loss scaling) on older ones; none on CPU or when mixed precision is off."""
    if device.type != "cuda" or not enabled:
        return None
    # is_bf16_supported() also counts emulated bf16, and asks about the current GPU, not this one.
    capability = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if tuple(capability) >= BF16_MIN_CAPABILITY else torch.float16


def restore_scaler(scaler: torch.amp.GradScaler, state: dict[str, Any], arm: str) -> None:
    """Load a checkpoint's loss scale; a checkpoint written without one (CPU, bf16 or fp32)
    resumed where fp16 is chosen starts from a fresh scale instead of failing."""
    if state or not scaler.is_enabled():
        scaler.load_state_dict(state)  # a disabled scaler ignores what it is given
        return
    log.info(
        "%s: the checkpoint was written without fp16 loss scaling (another device or "
        "precision); resuming in fp16 with a fresh loss scale",
        arm,
    )


def set_deterministic(enabled: bool) -> None:
    """Deterministic kernels (cuDNN and the rest of torch) for bit-exact resume on CUDA, or
    the fast defaults; set both ways, since a worker process runs many jobs in turn."""
    if (
        enabled
    ):  # cuBLAS needs a fixed workspace to be deterministic (CUDA docs, "Results reproducibility")
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = enabled
    # warn_only: an op with no deterministic CUDA kernel (AdaptiveAvgPool2d's backward, in
    # every ResNet/CNN student here) warns instead of failing the job; bench/gpu_check.sh
    # measures whether resume is then exact on the card.
    torch.use_deterministic_algorithms(enabled, warn_only=True)


def set_fast_kernels(device: torch.device, deterministic: bool) -> None:
    """On CUDA: TF32 tensor cores for fp32 matmuls and convolutions, and cuDNN's autotuner
    (cudnn.benchmark) unless the job is deterministic; CPU jobs are left as they are."""
    if device.type != "cuda":
        return
    # TF32 keeps fp32's range with a 10-bit mantissa: what the autocast-free parts (the
    # input layer, fp32 evaluation) can afford, and several times faster on Ampere and later.
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    # The autotuner picks kernels by timing them: fast for fixed shapes, but not repeatable.
    torch.backends.cudnn.benchmark = not deterministic


def channels_last_for(
    model: nn.Module, device: torch.device, amp_dtype: torch.dtype | None
) -> bool:
    """Whether to train `model` in channels_last: a convolutional student under CUDA autocast,
    where cuDNN's tensor-core convolutions want NHWC (PyTorch's memory-format tutorial); fp32
    and CPU runs keep NCHW, where the layout change only costs transposes."""
    if device.type != "cuda" or amp_dtype is None:
        return False
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def place(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Put a whole split on the GPU when it fits, else keep it in pinned host memory."""
    if device.type != "cuda":
        return t
    if t.numel() * t.element_size() <= GPU_RESIDENT_BYTES:
        return t.to(device)
    return t.pin_memory()
