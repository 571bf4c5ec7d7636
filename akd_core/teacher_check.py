"""check_teacher: a loaded teacher must take the dataset's samples and give (B, K) finite logits."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from akd_core.errors import TeacherLoadError, short_message
from akd_core.onnx_shapes import declared_fits

if TYPE_CHECKING:
    from akd_core.teachers import Teacher


def check_teacher(teacher: Teacher, input_shape: tuple[int, ...], num_classes: int | None) -> None:
    """Run the teacher on 2 zero samples; raise TeacherLoadError unless it gives (2, K) finite logits.

    `num_classes` None (not known yet): any K is accepted; it is compared once the data is read.
    """
    fed = (2, *input_shape)
    declared = teacher.declared_input
    told = f"; the model declares input shape {declared.shape_text()}" if declared else ""
    if declared is not None and not declared_fits(declared.shape, input_shape):
        raise TeacherLoadError(
            f"the teacher does not take the dataset's samples: fed shape {fed}{told}",
            field="teacher.source",
        )
    try:
        out = teacher.predict(torch.zeros(fed, device=teacher.device))
    except TeacherLoadError:
        raise
    except Exception as exc:  # the model's own error, whatever its runtime raises
        raise TeacherLoadError(
            f"the teacher rejected input of shape {fed}{told}: {short_message(exc)}",
            field="teacher.source",
        ) from exc
    if out.ndim != 2 or out.shape[0] != 2:
        raise TeacherLoadError(
            f"the teacher returned shape {tuple(out.shape)} for input {fed}; expected (2, "
            f"{num_classes or 'K'}) logits",
            field="teacher.source",
        )
    if num_classes is not None and out.shape[1] != num_classes:
        raise TeacherLoadError(
            f"the teacher outputs {out.shape[1]} classes but the dataset has {num_classes} "
            f"classes (dataset.source, samples of shape {input_shape}); expected (2, "
            f"{num_classes}) logits for input {fed}, found {tuple(out.shape)}; check the "
            "labels (dataset.num_classes) or the teacher",
            field="teacher.source",
        )
    if not torch.isfinite(out).all():
        raise TeacherLoadError(
            f"the teacher returned non-finite logits (NaN or inf) for zero inputs of shape {fed}",
            field="teacher.source",
        )
