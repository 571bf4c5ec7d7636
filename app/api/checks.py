"""Checks that run before anything is created: upload content and a spec's sources."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from akd_core.archives import check_archive
from akd_core.errors import AKDError
from akd_core.formats import (
    infer_dataset_format,
    infer_teacher_format,
    looks_like_archive,
    sniff,
)
from akd_core.limits import Limits, check_job_limits
from akd_core.preflight import check_spec
from akd_core.spec import JobSpec, parse_spec
from akd_core.text.names import is_text_arch
from akd_service.config import Settings
from akd_service.db.uploads import owned_upload_path
from app.api.problems import ApiProblem

if TYPE_CHECKING:
    from akd_core.data.peek import Peek

# Sniffed kinds that are zip or tar containers: each member is checked before anyone
# extracts or decompresses it (an .npz or a TorchScript file is a zip, and np.load or
# torch.jit.load would inflate a bomb in memory).
ARCHIVE_KINDS = frozenset({"zip", "tar", "cifar", "npz", "torchscript"})
FILE_SOURCE_MESSAGE = "file: sources are for the CLI; upload the file and use upload:<id>"


def inspect_upload(path: Path, settings: Settings) -> str:
    """Sniff a stored upload's kind; raise ApiProblem(422) for an unsafe or broken archive."""
    kind = sniff(path)
    # A file that starts like an archive but does not open as one (truncated, corrupt) is
    # refused rather than stored as "unknown".
    if kind in ARCHIVE_KINDS or (kind == "unknown" and looks_like_archive(path)):
        try:
            check_archive(path, settings.archive_limits().for_kind(kind))
        except AKDError as exc:
            raise ApiProblem(
                422,
                f"the uploaded archive was refused: {exc.message}",
                title=exc.title,
                field="file",
                slug="unsafe-archive",
            ) from exc
    return kind


def _upload_file(session: Session, source: str, owner: str, field: str, uploads_root: Path) -> Path:
    upload_id = source.removeprefix("upload:")
    path = owned_upload_path(session, upload_id, owner, uploads_root)
    if path is None or not path.is_file():
        raise ApiProblem(
            422,
            f"{field}: there is no upload {upload_id!r} for this caller; upload the file "
            "with POST /uploads and use the returned id as upload:<id>",
            title="Unknown upload",
            field=field,
            slug="unknown-upload",
        )
    return path


def _check_source_scheme(source: str, field: str) -> None:
    if source.startswith("file:"):
        raise ApiProblem(
            422, f"{field}: {FILE_SOURCE_MESSAGE}", title="Invalid job spec", field=field
        )


def check_teacher_source(source: str) -> None:
    """Over the API a teacher is an uploaded file, `upload:<id>`, or a hub model id, `hf:<id>`
    (loaded by the worker from its hub or hub cache); there are no builtin teachers."""
    _check_source_scheme(source, "teacher.source")
    if not source.startswith(("upload:", "hf:")):
        raise ApiProblem(
            422,
            f"teacher.source: {source[:80]!r} is not an uploaded teacher; upload the model "
            "file with POST /uploads and use upload:<id> (or hf:<org>/<name> for a hub model)",
            title="Invalid job spec",
            field="teacher.source",
        )


def check_builtin_dataset(source: str, field: str = "dataset.source") -> None:
    """Refuse `builtin:<name>` when no such dataset ships with the server."""
    # The registry module is torch-free; imported here so the API starts without numpy.
    from akd_core.data.builtin import BUILTINS

    name = source.removeprefix("builtin:")
    if name not in BUILTINS:
        raise ApiProblem(
            422,
            f"{field}: there is no builtin dataset {name[:80]!r}; available: "
            f"{', '.join(sorted(BUILTINS))} (or upload the data and use upload:<id>)",
            title="Invalid job spec",
            field=field,
        )


def _check_limits(
    spec: JobSpec, dataset_format: str | None, data_path: Path | None, limits: Limits
) -> None:
    """Refuse epochs, batch size, classes and a student past the server's limits (the student
    where the dataset's headers tell its size); the worker checks again with the loaded data."""
    from akd_core.data.peek import peek_dataset  # numpy, loaded on first submit

    shape, num_classes = peek_dataset(spec.dataset, dataset_format, data_path)
    check_job_limits(spec, limits, shape, num_classes)


def check_worker_memory(
    spec: JobSpec,
    dataset_format: str | None,
    data_path: Path | None,
    teacher_bytes: int,
    worker_memory_gb: float,
    peeked: Peek | None = None,
) -> None:
    """Refuse a job whose peak memory, estimated from the dataset's headers, exceeds the
    worker's (the worker's own pre-flight checks where the headers do not tell). `peeked`:
    the dataset's sample shape and class count when the teacher check already read them."""
    from akd_core.preflight import GIB, check_memory, header_estimate  # numpy on first use

    estimate = header_estimate(spec, dataset_format, data_path, teacher_bytes, peeked)
    if estimate is not None:
        where = f"a worker (AKD_WORKER_MEMORY_GB={worker_memory_gb:g})"
        # check_memory keeps the same headroom as the worker's own check.
        check_memory(estimate, int(worker_memory_gb * GIB), where)


def check_onnx_teacher_shapes(
    spec: JobSpec, teacher_path: Path, dataset_format: str | None, data_path: Path | None
) -> Peek | None:
    """Refuse an ONNX teacher whose declared input or output shape cannot fit the dataset's
    samples and classes (as far as its headers tell); the worker runs the model itself.
    Returns the dataset's (sample shape, class count) where it read them, for reuse."""
    from akd_core.data.peek import peek_exact  # numpy, loaded on first submit
    from akd_core.formats import ONNX_PARSE_MAX_BYTES
    from akd_core.onnx_shapes import check_declared_shapes, read_declared_shapes

    if teacher_path.stat().st_size > ONNX_PARSE_MAX_BYTES:
        return None  # not parsed in the API (memory); the worker's check on zeros tells
    declared = read_declared_shapes(teacher_path)
    if declared is None:
        return None
    peeked = peek_exact(spec.dataset, dataset_format, data_path)
    check_declared_shapes(declared, *peeked)
    return peeked


def check_hub_teacher(spec: JobSpec) -> str:
    """A hub model id (`hf:<org>/<name>`) is an hf teacher of a text student; its format."""
    if spec.teacher.format not in (None, "hf"):
        raise ApiProblem(422, f"teacher.format: a hub model id is a transformers folder, format "
                         f"'hf', not {spec.teacher.format!r}", title="Invalid job spec",
                         field="teacher.format")  # fmt: skip
    if not is_text_arch(spec.student.arch):
        raise ApiProblem(422, "student.arch: an 'hf' teacher distils into a text student; use "
                         "'bert' or 'shrink-teacher'", title="Invalid job spec",
                         field="student.arch")  # fmt: skip
    return "hf"


def check_hf_upload(spec: JobSpec, path: Path, limits: Limits, kind: str = "hf") -> None:
    """A text teacher's archive (a transformers folder, or kind onnx: one .onnx file and the
    tokenizer): a text student, and every member checked (no pickle weights, no code, no
    remote-code config, caps) without extracting it."""
    from akd_core.text.hf_folder import ONNX_LAYOUT, check_hf_archive  # torch-free
    from akd_core.text.names import check_teacher_kind, is_text_arch

    if kind == "onnx":
        check_teacher_kind(kind, spec.student.arch)
        if sniff(path) not in ("zip", "tar"):
            raise ApiProblem(422, f"teacher.source: {ONNX_LAYOUT}; upload that folder as a zip "
                             "or tar", title="Invalid job spec", field="teacher.source")  # fmt: skip
        check_hf_archive(path, limits, "onnx")
        return
    if not is_text_arch(spec.student.arch):
        raise ApiProblem(
            422,
            "student.arch: an 'hf' teacher distils into a text student; use 'bert' or "
            "'shrink-teacher'",
            title="Invalid job spec",
            field="student.arch",
        )
    check_hf_archive(path, limits)


def validate_sources(
    session: Session,
    spec: JobSpec,
    owner: str,
    uploads_root: Path,
    limits: Limits | None = None,
    worker_memory_gb: float | None = None,
) -> JobSpec:
    """Check architectures, every source, the server's `limits` and (when `worker_memory_gb`
    is set) the memory estimate; return `spec` with formats filled in.

    Raises ApiProblem or AKDError (both answered as 422 naming the field) on any mismatch.
    """
    check_spec(spec)  # the run's own pre-flight, torch-free: architectures, option values
    check_teacher_source(spec.teacher.source)
    _check_source_scheme(spec.dataset.source, "dataset.source")
    if spec.dataset.source.startswith("builtin:"):
        check_builtin_dataset(spec.dataset.source)

    teacher_format: str | None = spec.teacher.format
    teacher_bytes = 0
    teacher_path: Path | None = None
    if spec.teacher.source.startswith("hf:"):  # the worker loads it (text.hf_folder._from_hub)
        teacher_format = check_hub_teacher(spec)
    if spec.teacher.source.startswith("upload:"):
        path = teacher_path = _upload_file(
            session, spec.teacher.source, owner, "teacher.source", uploads_root
        )
        teacher_bytes = path.stat().st_size
        if spec.teacher.format == "onnx" and is_text_arch(spec.student.arch):
            check_hf_upload(spec, path, limits or Limits(), "onnx")  # an ONNX text teacher
        else:
            teacher_format = infer_teacher_format(path, spec.teacher.format)
        if teacher_format == "hf":
            check_hf_upload(spec, path, limits or Limits())
    for field in ("val_source", "test_source"):  # text data's separate split files
        extra = getattr(spec.dataset, field)
        if extra is not None:
            _check_source_scheme(extra, f"dataset.{field}")
            _upload_file(session, extra, owner, f"dataset.{field}", uploads_root)
    dataset_format: str | None = spec.dataset.format
    data_path = None
    if spec.dataset.source.startswith("upload:"):
        data_path = _upload_file(
            session, spec.dataset.source, owner, "dataset.source", uploads_root
        )
        dataset_format = infer_dataset_format(data_path, spec.dataset.format)
    _check_limits(spec, dataset_format, data_path, limits or Limits())
    peeked = None  # the dataset's headers, read once for both checks below
    if (
        teacher_format == "onnx"
        and teacher_path is not None
        and not is_text_arch(spec.student.arch)
    ):
        peeked = check_onnx_teacher_shapes(spec, teacher_path, dataset_format, data_path)
    if worker_memory_gb is not None:
        check_worker_memory(
            spec, dataset_format, data_path, teacher_bytes, worker_memory_gb, peeked
        )

    # Store the resolved formats so the worker runs exactly what was validated here; parsing
    # again re-runs the cross-field rules (e.g. an inferred safetensors teacher needs an arch).
    data = spec.model_dump(mode="json")
    data["teacher"]["format"] = teacher_format
    data["dataset"]["format"] = dataset_format
    return parse_spec(data)
