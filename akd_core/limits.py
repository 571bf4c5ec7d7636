"""The server's resource bounds: one frozen dataclass checked at submit and again before training.

The CLI uses the defaults; the service builds one from its Settings (akd_service.config). The
archive caps are part of it, so every reader of an upload gets the same numbers the
upload was checked with.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from akd_core.errors import SpecError

if TYPE_CHECKING:
    from akd_core.spec import JobSpec

GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class Limits:
    """Caps on archives, datasets and the training a job may ask for."""

    # Archives (zip, tar, and the zips that .npz and TorchScript files are).
    max_members: int = 100_000
    max_total_bytes: int = 8 * GIB
    max_ratio: float = 200.0
    # Ratio checks start past this many uncompressed bytes: small members compress
    # arbitrarily well (e.g. blank images) without any harm.
    ratio_min_bytes: int = 1 * MIB
    # An .npz is inflated into memory by numpy. Zeros deflate ~1030x (deflate's ceiling) and
    # real arrays 1-20x (CIFAR ~1.1x, MNIST ~6x, sparse one-hot features a few tens), so
    # past 64 MiB a ratio above 100 is refused; below it any ratio is harmless. The total is
    # 2 GiB: the worker holds a float32 copy of it as well (4x more for uint8 pixels).
    npz_max_total_bytes: int = 2 * GIB
    npz_max_ratio: float = 100.0
    npz_ratio_min_bytes: int = 64 * MIB
    # Datasets: CSV is parsed row by row into a preallocated float32 table.
    csv_max_rows: int = 5_000_000
    csv_max_columns: int = 10_000
    # ImageNet-1k is the largest common label set; the teacher-logit cache costs
    # N x classes x 4 bytes, so 10^4 classes on a million samples would take 40 GB.
    max_classes: int = 1000
    # Training: epochs of one arm (phase1 + phase2), batch size, student parameters.
    max_epochs: int = 10_000
    max_batch_size: int = 8192
    # 100 M parameters: 400 MB of fp32 weights, ~1.6 GB with gradients and AdamW state.
    # The registry's default students are 1.5 k (cnn-tiny) .. 1.7 M (resnet110).
    max_student_params: int = 100_000_000
    # Data whose float32 splits fit under this is held in memory whole ("resident");
    # larger data is read from the on-disk data cache batch by batch ("streamed").
    resident_data_bytes: int = 256 * MIB
    # The job cache folder (logits, decoded data, tokens) is pruned to this many bytes,
    # least recently used first (akd_core.cache_prune); None: never pruned.
    cache_max_bytes: int | None = None

    def for_kind(self, kind: str) -> Limits:
        """The caps for an archive sniffed as `kind` (an .npz has its own total and ratio)."""
        if kind != "npz":
            return self
        return replace(
            self,
            max_total_bytes=min(self.max_total_bytes, self.npz_max_total_bytes),
            max_ratio=self.npz_max_ratio,
            ratio_min_bytes=self.npz_ratio_min_bytes,
        )


def _over(field: str, what: str, value: int, limit: int) -> SpecError:
    return SpecError(f"{what} = {value} exceeds the server's limit of {limit}", field=field)


def check_job_limits(
    spec: JobSpec,
    limits: Limits,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int | None = None,
) -> None:
    """Raise SpecError naming the field when `spec` asks for more than `limits` allow.

    The student's size is checked when the sample shape is known (`input_shape`); with
    `num_classes` unknown the smallest count (2) is assumed, so a refusal is always certain.
    """
    from akd_core.models.names import model_kind_ok, student_params  # torch-free

    ann = spec.annealing
    if ann.total_epochs > limits.max_epochs:
        raise _over(
            "annealing.phase1_epochs",
            f"phase1_epochs + phase2_epochs = {ann.phase1_epochs} + {ann.phase2_epochs}",
            ann.total_epochs,
            limits.max_epochs,
        )
    batch = spec.optimizer.batch_size
    if batch > limits.max_batch_size:
        raise _over("optimizer.batch_size", "batch_size", batch, limits.max_batch_size)
    declared = spec.dataset.num_classes
    if declared is not None and declared > limits.max_classes:
        raise _over("dataset.num_classes", "num_classes", declared, limits.max_classes)
    if num_classes is not None and num_classes > limits.max_classes:
        raise SpecError(
            f"the dataset has {num_classes} classes, past the server's limit of "
            f"{limits.max_classes}",
            field="dataset.source",
        )
    if input_shape is None or not model_kind_ok(spec.student.arch, tuple(input_shape)):
        return  # unknown size, or a mismatch the loader explains better
    k = num_classes or declared or 2
    params = student_params(spec.student.arch, spec.student.options, input_shape, k)
    if params > limits.max_student_params:
        raise SpecError(
            f"student {spec.student.arch!r} with options {spec.student.options} has {params} "
            f"parameters for samples of shape {tuple(input_shape)} and {k} classes, past the "
            f"server's limit of {limits.max_student_params}; choose a smaller width or hidden "
            "sizes",
            field="student.options" if spec.student.options else "student.arch",
        )
