"""An ONNX teacher's declared input and output shapes, read torch-free and checked against a
dataset's sample shape and class count (the API runs it at submit; the worker runs the model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from akd_core.errors import TeacherLoadError

# One declared dimension: a fixed size (int > 0) or None for a named, unknown or dynamic one.
Dim = int | None


@dataclass(frozen=True)
class DeclaredShapes:
    """The graph's one data input and first output as declared (None: rank not declared)."""

    input: tuple[Dim, ...] | None
    output: tuple[Dim, ...] | None


def dims_text(dims: tuple[Dim, ...]) -> str:
    """A declared shape as a person reads it, e.g. (?, 1, 8, 8)."""
    return (
        "("
        + ", ".join("?" if d is None else str(d) for d in dims)
        + ("," if len(dims) == 1 else "")
        + ")"
    )


def declared_fits(
    dims: tuple[Dim, ...] | tuple[int | str | None, ...], sample: tuple[int, ...]
) -> bool:
    """Whether a declared input (batch first) takes samples of shape `sample`: same rank, and
    every fixed dimension past the batch equal (named, unknown or <= 0 dims accept any size)."""
    rest = dims[1:]
    if len(rest) != len(sample):
        return False
    return all(
        not isinstance(d, int) or d <= 0 or d == s for d, s in zip(rest, sample, strict=True)
    )


def _dims(value_info: object) -> tuple[Dim, ...] | None:
    tensor = value_info.type.tensor_type  # type: ignore[attr-defined]
    if not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in tensor.shape.dim)  # fmt: skip


def read_declared_shapes(path: Path) -> DeclaredShapes | None:
    """The declared shapes of an ONNX file's data input and first output; None where the graph
    has not exactly one data input (the worker explains). TeacherLoadError if it does not parse."""
    import onnx  # a protobuf parser; imported here so the API starts without it

    try:
        # load_external_data=False: only the graph's own bytes, never a weights file it names.
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # whatever protobuf raises on hostile bytes
        raise TeacherLoadError(
            f"the uploaded teacher is not a readable ONNX model ({type(exc).__name__}); export "
            "it again with torch.onnx.export and upload the .onnx file",
            field="teacher.source",
        ) from exc
    graph = model.graph
    # Old exports (IR < 4) list every weight as a graph input too: those are not data inputs.
    weights = {t.name for t in graph.initializer}
    inputs = [v for v in graph.input if v.name not in weights]
    if len(inputs) != 1 or not graph.output:
        return None
    return DeclaredShapes(_dims(inputs[0]), _dims(graph.output[0]))


def check_declared_shapes(
    declared: DeclaredShapes, sample: tuple[int, ...] | None, num_classes: int | None
) -> None:
    """Raise TeacherLoadError when the declared input cannot take `sample` or the declared output
    is not (batch, num_classes) logits; dynamic dims and unknown values (None) pass."""
    if (
        sample is not None
        and declared.input is not None
        and not declared_fits(declared.input, sample)
    ):
        raise TeacherLoadError(
            f"the teacher does not take the dataset's samples: expected an input of shape "
            f"{dims_text((None, *sample))} (batch, then one sample as loaded), the teacher "
            f"declares {dims_text(declared.input)}; check dataset.source or the teacher",
            field="teacher.source",
        )
    out = declared.output
    if out is None:
        return
    if len(out) != 2 or (num_classes is not None and out[1] is not None and out[1] != num_classes):
        k = num_classes if num_classes is not None else "K"
        raise TeacherLoadError(
            f"the teacher's output does not match the dataset: expected (batch, {k}) logits for "
            f"{k} classes, the teacher declares {dims_text(out)}; check the labels "
            "(dataset.num_classes) or the teacher",
            field="teacher.source",
        )
