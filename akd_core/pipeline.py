"""run_job: the one entry point of a distillation run, called by `akd distill` and the worker."""

from __future__ import annotations

import hashlib
import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from akd_core import preflight
from akd_core.arm_setup import Augment, TeacherFn, plan_arm
from akd_core.cache import LogitCache, cache_key
from akd_core.data import Dataset, load_dataset
from akd_core.data.augment import crop_flip, is_random
from akd_core.data.teacher_normalize import adopt_declared
from akd_core.data.tensors import batch_decoder, split_tensor
from akd_core.device import (
    amp_dtype_for,
    inference_batch_size,
    place,
    select_device,
    set_deterministic,
    set_fast_kernels,
)
from akd_core.distributed import ParallelArm, check_devices, train_arm_parallel
from akd_core.errors import SpecError, TrainingError
from akd_core.events import CancelCheck, EventSink, Hooks, ProgressEvent, Stage
from akd_core.limits import Limits, check_job_limits
from akd_core.models import build_model
from akd_core.models.input_layer import with_input_layer
from akd_core.report import ArmSummary, RunFacts, teacher_facts, write_outputs
from akd_core.spec import JobSpec, TeacherSpec
from akd_core.teacher_source import TeacherSource
from akd_core.teachers import Teacher, check_teacher, load_teacher
from akd_core.trainer import ArmTrainer, Progress, TrainData, accuracy

if TYPE_CHECKING:
    from akd_core.text.data import TextDataset

log = logging.getLogger(__name__)
Resolver = Callable[[str], Path]
M = TypeVar("M", bound=torch.nn.Module)

# Share of the progress bar given to each stage (training arms share TRAIN_SPAN).
TRAIN_SPAN = (0.10, 0.92)


def resolve_source(source: str, resolve: Resolver | None, field: str) -> Path | None:
    """Map a spec source to a local path (None for builtin: sources)."""
    scheme, _, rest = source.partition(":")
    if scheme == "builtin":
        return None
    if scheme == "file":
        path = Path(rest).expanduser()
        if not (path.is_file() or (field == "dataset.source" and path.is_dir())):
            raise SpecError(
                f"file {path} does not exist or is not a file"
                + (" (or an image folder)" if field == "dataset.source" else ""),
                field=field,
            )
        return path
    if resolve is None:
        raise SpecError(
            f"{source!r} refers to an upload, which only the service can resolve; "
            "with the CLI use file:<path>",
            field=field,
        )
    return resolve(source)


def run_job(
    spec: JobSpec,
    out_dir: Path,
    *,
    resolve: Resolver | None = None,
    on_event: EventSink | None = None,
    should_cancel: CancelCheck | None = None,
    resume: bool = False,
    cache_dir: Path | None = None,
    device: str | None = None,
    devices: int = 1,
    limits: Limits | None = None,
    archive_limits: Limits | None = None,
) -> dict[str, Any]:
    """Run a whole job: load, cache teacher logits, train every arm, export, report.

    `limits` are the server's bounds (default: Limits()); `archive_limits` is its older name.
    """
    limits = limits or archive_limits or Limits()
    from akd_core.text.pipeline import is_text_job, run_text_job  # imports this module

    if is_text_job(spec):  # a transformers teacher on text data
        return run_text_job(spec, out_dir, resolve=resolve, on_event=on_event,
                            should_cancel=should_cancel, resume=resume, cache_dir=cache_dir,
                            device=device, devices=devices, limits=limits)  # fmt: skip
    # The spec may have been queued under other settings: check again before any work.
    check_job_limits(spec, limits)
    hooks = Hooks(on_event, should_cancel)
    out_dir, started, dev, amp_dtype = start_run(spec, out_dir, device)
    check_devices(devices, dev, spec)
    set_deterministic(spec.deterministic)  # before any kernel runs, both ways
    set_fast_kernels(dev, spec.deterministic)
    stage = _stage_emitter(hooks)

    stage("loading", 0.0, "pre-flight checks, then loading the dataset and the teacher")
    data_path = resolve_source(spec.dataset.source, resolve, "dataset.source")
    teacher_path = resolve_source(spec.teacher.source, resolve, "teacher.source")
    if teacher_path is None:
        raise SpecError("the teacher must be an upload or a file", field="teacher.source")
    # Seconds, before any data is read: the spec, the student's export, the memory estimate.
    peek = preflight.before_data(spec, data_path, str(dev), teacher_path.stat().st_size)
    if peek.shape is not None and peek.num_classes is not None:  # the student's size, known
        check_job_limits(spec, limits, peek.shape, peek.num_classes)  # before the teacher loads
    teacher: Teacher | None = None
    if (shape := peek.teacher_probe(spec.teacher)) is not None:  # its sizes, on zeros
        teacher = load_teacher(spec.teacher, teacher_path, dev, input_shape=shape,
                               num_classes=peek.num_classes)  # fmt: skip
        check_teacher(teacher, shape, peek.num_classes)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=out_dir) as work:
        ds = load_dataset(spec.dataset, data_path, spec.seed, Path(work), limits,
                          store_root=(cache_dir or out_dir / ".cache") / "data",
                          on_progress=_decode_progress(hooks),
                          on_evict=_eviction_teller(hooks, "loading", 0.0))  # fmt: skip
    check_job_limits(spec, limits, ds.input_shape, ds.num_classes)  # the student's real size
    preflight.after_data(spec, ds, teacher_path.stat().st_size, str(dev), peek.exported)
    hooks.check_cancel()
    checked = (shape, peek.num_classes) if teacher is not None else None
    teacher = teacher or load_teacher(
        spec.teacher, teacher_path, dev, input_shape=ds.input_shape, num_classes=ds.num_classes
    )
    if checked != (ds.input_shape, ds.num_classes):  # the headers told less, or otherwise
        check_teacher(teacher, ds.input_shape, ds.num_classes)
    # A teacher that declares its input's mean/std is fed that when the spec names none.
    ds = adopt_declared(ds, spec.dataset.normalize, teacher.declared_preprocessing)
    hooks.check_cancel()

    stage("caching_teacher", 0.03, "running the teacher over the data")
    random_aug = is_random(spec.dataset.augment)
    needs_train = not random_aug and any(a != "student" for a in spec.arms)
    t0 = time.perf_counter()
    logits, cache_hit = _teacher_logits(
        teacher,
        spec.teacher,
        ds,
        cache_dir or out_dir / ".cache",
        needs_train,
        inference_batch_size(dev),
        hooks,
        max_bytes=limits.cache_max_bytes,
    )
    cache_seconds = time.perf_counter() - t0
    teacher_val = _np_accuracy(logits["val"], ds.y_val)
    teacher_test = _np_accuracy(logits["test"], ds.y_test)
    _check_teacher_accuracy(spec, teacher_val, ds.num_classes)
    leak = preflight.teacher_test_warning(teacher_test, len(ds.y_test))
    if leak:
        log.warning("%s", leak)
    teacher_info = teacher_facts(teacher, teacher_path)
    per_batch = random_aug and devices == 1  # this process runs the teacher on each batch
    # Data-parallel with random augmentation: each rank loads its own teacher (own sandbox).
    rank_teacher = None
    if random_aug and devices > 1:
        rank_teacher = TeacherSource.of(teacher, spec.teacher, teacher_path, ds.input_shape,
                                        ds.num_classes)  # fmt: skip
    if not per_batch:
        teacher.release()  # the cache holds all the teacher knows about this data

    data = train_data(
        ds,
        logits,
        dev,
        needs_train,
        devices=devices,
        teacher_fn=(lambda xb: teacher.predict(xb).float()) if per_batch else None,
        augment=crop_flip if random_aug else None,
    )
    x_test, y_test = split_tensor(ds.x_test, dev), place(torch.from_numpy(ds.y_test), dev)
    progress = Progress(
        total_epochs=spec.epoch_budget * len(spec.arms), start=TRAIN_SPAN[0], end=TRAIN_SPAN[1]
    )
    run_key = _run_key(spec, ds, teacher_info)

    def new_student() -> torch.nn.Module:
        net = build_model(spec.student.arch, ds.input_shape, ds.num_classes, spec.student.options)
        # The student takes the teacher's input; its own standardisation is a fixed layer.
        return with_input_layer(net, ds.x_train)

    run = ArmRun(spec, data, dev, out_dir, hooks, progress, amp_dtype, run_key, resume, devices,
                 teacher=rank_teacher)  # fmt: skip
    arms, students = train_arms(run, new_student, x_test, y_test)

    stage("exporting", TRAIN_SPAN[1], "exporting the student to ONNX")
    hooks.check_cancel()
    facts = RunFacts(
        spec=spec,
        dataset=ds,
        teacher=teacher_info,
        teacher_val_accuracy=teacher_val,
        teacher_test_accuracy=teacher_test,
        device=str(dev),
        amp=str(amp_dtype).removeprefix("torch.") if amp_dtype else None,
        cache_seconds=cache_seconds,
        cache_hit=cache_hit,
        started=started,
        warnings=(leak,) if leak else (),
    )
    report = write_outputs(
        out_dir, facts, students[spec.method], arms, on_stage=lambda s, f: stage(s, f, "")
    )
    hooks.emit(ProgressEvent(kind="done", stage="evaluating", message="done", progress=1.0))
    return report


def train_data(
    ds: Dataset | TextDataset,
    logits: dict[str, np.ndarray],
    dev: torch.device,
    needs_train: bool,
    *,
    devices: int = 1,
    teacher_fn: TeacherFn | None = None,
    augment: Augment | None = None,
) -> TrainData:
    """The run's train/val tensors on `dev`, with the cached train logits when an arm needs them.

    Data-parallel (`devices` > 1): they stay on the CPU and each rank places its own copy.
    """
    dev = dev if devices == 1 else torch.device("cpu")
    return TrainData(
        x_train=split_tensor(ds.x_train, dev),
        y_train=place(torch.from_numpy(ds.y_train), dev),
        x_val=split_tensor(ds.x_val, dev),
        y_val=place(torch.from_numpy(ds.y_val), dev),
        teacher_train=place(torch.from_numpy(logits["train"]), dev) if needs_train else None,
        teacher_fn=teacher_fn,
        augment=augment,
        decode=batch_decoder(ds.x_train),  # streamed data: row ids decoded per batch
    )


@dataclass(frozen=True)
class ArmRun:
    """What every arm of one run trains with (ArmTrainer's arguments but the arm and model)."""

    spec: JobSpec
    data: TrainData
    dev: torch.device
    out_dir: Path
    hooks: Hooks
    progress: Progress
    amp_dtype: torch.dtype | None
    run_key: str
    resume: bool
    devices: int = 1  # processes (one device each) that train every arm together
    teacher: TeacherSource | None = None  # what each rank loads its teacher from (see above)


def train_arms(
    run: ArmRun, new_student: Callable[[], M], x_test: torch.Tensor, y_test: torch.Tensor
) -> tuple[dict[str, ArmSummary], dict[str, M]]:
    """Train each arm from the same seeded student; its summary and its best student on CPU."""
    arms: dict[str, ArmSummary] = {}
    students: dict[str, M] = {}
    for arm in run.spec.arms:
        torch.manual_seed(run.spec.seed)  # every arm starts from the same initial student
        model = new_student()
        if run.devices > 1:
            # Ranks of an arm that never runs the teacher (cross-entropy only) load none.
            uses_teacher = any(p.loss != "ce" for p in plan_arm(arm, run.spec))
            job = ParallelArm(arm, run.spec, model, run.data, run.dev.type, run.out_dir,
                              run.progress, run.amp_dtype, run.run_key, run.resume,
                              teacher=run.teacher if uses_teacher else None)  # fmt: skip
            result = train_arm_parallel(job, run.devices, run.hooks)
        else:
            result = ArmTrainer(
                arm, run.spec, model, run.data, run.dev, run.out_dir, run.hooks, run.progress,
                run.amp_dtype, run.run_key,
            ).run(run.resume)  # fmt: skip
        model.load_state_dict(result.best_state)
        test_acc = accuracy(model, x_test, y_test, inference_batch_size(run.dev),
                            decode=run.data.decode)  # fp32 # fmt: skip
        arms[arm] = ArmSummary.from_result(result, test_acc)
        students[arm] = model.cpu().eval()
    return arms, students


def start_run(
    spec: JobSpec, out_dir: Path, device: str | None
) -> tuple[Path, float, torch.device, torch.dtype | None]:
    """Create `out_dir`, note the start time, pick the device and its mixed-precision dtype."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    dev = select_device(device or spec.device)
    return out_dir, started, dev, amp_dtype_for(dev, spec.mixed_precision)


def _decode_progress(hooks: Hooks) -> Callable[[int, int], None]:
    """Events while the dataset is decoded into the data cache (the loading stage's share)."""

    def emit(done: int, total: int) -> None:
        hooks.check_cancel()
        hooks.emit(ProgressEvent(kind="log", stage="loading", message=f"decoded {done}/{total}",
                                 progress=0.03 * done / max(total, 1),
                                 extra={"decoded": done, "total": total}))  # fmt: skip

    return emit


def _eviction_teller(hooks: Hooks, stage: Stage, progress: float) -> Callable[[str], None]:
    """A cache eviction's line as a 'log' event of `stage`: an eviction is never silent."""

    def tell(line: str) -> None:
        hooks.emit(ProgressEvent(kind="log", stage=stage, message=line, progress=progress))

    return tell


def _stage_emitter(hooks: Hooks) -> Callable[[Stage, float, str], None]:
    def stage(name: Stage, progress: float, message: str) -> None:
        hooks.emit(ProgressEvent(kind="phase", stage=name, message=message, progress=progress))

    return stage


# Rows per call to the teacher between two cancellation checks while the cache is built.
CACHE_CHUNK = 8192
CACHE_CHUNK_BYTES = 16 * 1024**2


def _teacher_logits(
    teacher: Teacher,
    teacher_spec: TeacherSpec,
    ds: Dataset,
    cache_root: Path,
    needs_train: bool,
    batch_size: int,
    hooks: Hooks,
    max_bytes: int | None = None,
) -> tuple[dict[str, np.ndarray], bool]:
    """Teacher logits per split from the cache, or computed once (eval, no_grad, batched).

    `max_bytes` caps the cache folder: room is made for the new entry before it is written.
    """
    cache = LogitCache(cache_root, max_bytes, _eviction_teller(hooks, "caching_teacher", 0.03))
    # The same bytes read as another arch or with other options would give other logits.
    how = teacher_spec.model_dump_json(include={"format", "arch", "arch_options"})
    key = cache_key(f"{teacher.fingerprint}|{how}", ds.fingerprint)
    cached = cache.get(key)
    wanted = ["val", "test"] + (["train"] if needs_train else [])
    if cached is not None and all(k in cached for k in wanted):
        return cached, True
    splits = {"train": ds.x_train, "val": ds.x_val, "test": ds.x_test}
    logits = {}
    # Large samples: fewer rows per call, in whole batches, so a chunk stays ~CACHE_CHUNK_BYTES.
    row_bytes = 4 * int(np.prod(ds.input_shape))
    chunk = max(batch_size, CACHE_CHUNK_BYTES // row_bytes // batch_size * batch_size)
    chunk = min(CACHE_CHUNK, chunk)
    for name in wanted:
        x, parts = splits[name], []
        for i in range(0, len(x), chunk):
            hooks.check_cancel()
            parts.append(teacher.logits_for(x[i : i + chunk], batch_size=batch_size))
        logits[name] = np.concatenate(parts) if parts else np.zeros((0, ds.num_classes), np.float32)
    for name, arr in logits.items():
        if not np.isfinite(arr).all():
            raise TrainingError(f"the teacher produced non-finite logits on the {name} split")
    cache.put(key, logits)
    return logits, False


def _run_key(spec: JobSpec, ds: Dataset, teacher: dict[str, Any]) -> str:
    """What a checkpoint must have been trained on to be resumed by this run."""
    # Export, comparison and device settings do not change what an arm trains.
    # (`deterministic` changes how exactly an arm repeats, not what it trains.)
    training = spec.model_dump_json(
        exclude={"compare", "export", "device", "min_teacher_accuracy", "deterministic"}
    )
    blob = f"{training}|{ds.fingerprint}|{teacher['fingerprint']}"
    return hashlib.sha256(blob.encode()).hexdigest()


def _np_accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == y).mean()) if len(y) else 0.0


def _check_teacher_accuracy(spec: JobSpec, val_accuracy: float, num_classes: int) -> None:
    """Stop early when the teacher is near chance: preprocessing or labels do not match."""
    floor = spec.min_teacher_accuracy
    if floor is None:
        floor = min(1.5 / num_classes, 0.9)
    if val_accuracy < floor:
        raise TrainingError(
            f"the teacher's validation accuracy is {val_accuracy:.1%}, near chance for "
            f"{num_classes} classes (threshold {floor:.1%}). The teacher probably expects other "
            "preprocessing (check dataset.normalize: none, train-mean-std or explicit mean/std) "
            "or a different label order. Set min_teacher_accuracy to 0 to proceed anyway."
        )
