"""run_text_job: a distillation run for a transformers teacher on csv/jsonl text.

The same stages as the image run (akd_core.pipeline): data -> teacher logits cache (the
teacher runs once, sandboxed, and is released) -> arms (akd_core.trainer, unchanged: text
batches are stacked (B, C, L) int64 tokens) -> export -> report.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from akd_core import pipeline as core
from akd_core.device import inference_batch_size
from akd_core.distributed import check_devices
from akd_core.errors import SpecError, TeacherLoadError
from akd_core.events import CancelCheck, EventSink, Hooks, ProgressEvent
from akd_core.limits import Limits, check_job_limits
from akd_core.spec import JobSpec
from akd_core.teachers import load_teacher
from akd_core.text.data import TextDataset, load_text_dataset, tokenizer_sha
from akd_core.text.defaults import text_defaults
from akd_core.text.hf_folder import FolderKind, HfFolder, open_hf_folder
from akd_core.text.names import (
    check_teacher_kind,
    check_text_export,
    is_text_arch,
    text_student_params,
)
from akd_core.text.report import TextRunFacts, write_text_outputs
from akd_core.text.students import TokenClassifier, build_text_student
from akd_core.text.tokens import load_tokenizer
from akd_core.trainer import Progress


def is_text_job(spec: JobSpec) -> bool:
    """A job with a transformers teacher or a text student runs the text pipeline."""
    t = spec.teacher
    return t.format == "hf" or t.source.startswith("hf:") or is_text_arch(spec.student.arch)


def _teacher_path(spec: JobSpec, resolve: core.Resolver | None) -> Path | None:
    source = spec.teacher.source
    if source.startswith("hf:"):
        return None
    if source.startswith("file:"):
        path = Path(source.removeprefix("file:")).expanduser()
        if not path.exists():
            raise SpecError(f"{path} does not exist (a model folder, zip or tar)",
                            field="teacher.source")  # fmt: skip
        return path
    return core.resolve_source(source, resolve, "teacher.source")


def _data_paths(spec: JobSpec, resolve: core.Resolver | None) -> dict[str, Path]:
    d, paths = spec.dataset, {}
    for split, source, field in (("train", d.source, "dataset.source"),
                                 ("val", d.val_source, "dataset.val_source"),
                                 ("test", d.test_source, "dataset.test_source")):  # fmt: skip
        if source is None:
            continue
        path = core.resolve_source(source, resolve, field)
        if path is None:
            raise SpecError("text data comes as a csv or jsonl file, not builtin data", field=field)
        paths[split] = path
    return paths


def check_vocabulary(folder: HfFolder, tokenizer: Any, ds: TextDataset) -> None:
    """Refuse a tokenizer whose ids the model cannot embed, or texts longer than its positions."""
    vocab = int(folder.config.get("vocab_size", 0))
    if len(tokenizer) > vocab:
        raise TeacherLoadError(
            f"the tokenizer has {len(tokenizer)} tokens but the teacher's vocabulary has {vocab}: "
            "they do not belong together; ship the tokenizer the teacher was trained with",
            field="teacher.source",
        )
    top = max(int(x[:, 0].max()) for x in (ds.x_train, ds.x_val, ds.x_test))
    if top >= vocab:
        raise TeacherLoadError(
            f"the tokenizer produced token id {top} but the teacher's vocabulary has {vocab} "
            "entries; the tokenizer does not match the model", field="teacher.source",
        )  # fmt: skip
    positions = int(folder.config.get("max_position_embeddings", 0))
    offset = int(folder.config.get("pad_token_id") or 0) + 1 if folder.model_type in (
        "roberta", "xlm-roberta", "camembert") else 0  # fmt: skip
    longest = max(x.shape[-1] for x in (ds.x_train, ds.x_val, ds.x_test))
    if positions and longest + offset > positions:
        raise SpecError(
            f"dataset.max_length ({ds.max_length}) gives sequences of {longest} tokens but the "
            f"teacher takes at most {positions - offset}; set dataset.max_length to at most "
            f"{positions - offset}",
            field="dataset.max_length",
        )


def _check_student_size(spec: JobSpec, folder: HfFolder, ds: TextDataset, limits: Limits) -> None:
    n = text_student_params(spec.student.arch, spec.student.options, folder.config,
                            ds.num_classes, "token_type_ids" in ds.inputs)  # fmt: skip
    if n > limits.max_student_params:
        raise SpecError(
            f"student {spec.student.arch!r} with options {spec.student.options} has {n} "
            f"parameters, past the server's limit of {limits.max_student_params}; choose "
            "fewer layers or a smaller hidden size",
            field="student.options",
        )


def run_text_job(spec: JobSpec, out_dir: Path, *, resolve: core.Resolver | None = None,
                 on_event: EventSink | None = None, should_cancel: CancelCheck | None = None,
                 resume: bool = False, cache_dir: Path | None = None, device: str | None = None,
                 devices: int = 1, limits: Limits | None = None) -> dict[str, Any]:  # fmt: skip
    """Run a whole text job: load, cache teacher logits, train every arm, export, report.

    `devices` > 1 trains each arm data-parallel (akd_core.distributed): the teacher's logits
    are cached once here and every rank takes its slice of each global batch.
    """
    limits = limits or Limits()
    if not is_text_arch(spec.student.arch):
        raise SpecError(f"a transformers teacher distils into a text student; set student.arch "
                        f"to 'bert' or 'shrink-teacher', not {spec.student.arch!r}",
                        field="student.arch")  # fmt: skip
    check_text_export(spec.export.raw_input)
    spec = text_defaults(spec)
    check_job_limits(spec, limits)
    hooks = Hooks(on_event, should_cancel)
    out_dir, started, dev, amp_dtype = core.start_run(spec, out_dir, device)
    check_devices(devices, dev, spec)  # after the text defaults: they set the batch size
    stage = core._stage_emitter(hooks)
    cache_root = cache_dir or out_dir / ".cache"

    stage("loading", 0.0, "loading the teacher folder, its tokenizer and the text data")
    with tempfile.TemporaryDirectory(prefix=".teacher-", dir=out_dir) as work:
        kind: FolderKind = "onnx" if spec.teacher.format == "onnx" else "hf"
        check_teacher_kind(kind, spec.student.arch)
        folder = open_hf_folder(
            spec.teacher.source, _teacher_path(spec, resolve), Path(work), limits, kind
        )
        tokenizer = load_tokenizer(folder.root)
        if "vocab_size" not in folder.config:  # an ONNX teacher without config.json
            config = {**folder.config, "vocab_size": len(tokenizer)}
            folder = dataclasses.replace(folder, config=config)
        id2label = folder.config.get("id2label") or {}
        teacher_labels = [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]
        ds = load_text_dataset(spec.dataset, _data_paths(spec, resolve), tokenizer,
                               tokenizer_sha(folder.root), teacher_labels, spec.seed,
                               cache_root, limits,
                               on_evict=core._eviction_teller(hooks, "loading", 0.0))  # fmt: skip
        check_vocabulary(folder, tokenizer, ds)
        uses_types = "token_type_ids" in ds.inputs

        def new_student() -> TokenClassifier:
            return build_text_student(spec.student.arch, spec.student.options, folder,
                                      ds.classes, tokenizer.pad_token_id, uses_types,
                                      ds.max_length)  # fmt: skip

        _check_student_size(spec, folder, ds, limits)  # before any model is built
        new_student()  # options and vocabulary checked before the teacher runs
        hooks.check_cancel()
        teacher = load_teacher(spec.teacher.model_copy(update={"format": kind}), folder.root, dev)
        probe = teacher.logits_for(ds.x_val[:2])
        if probe.shape[1] != ds.num_classes:
            raise TeacherLoadError(
                f"the teacher outputs {probe.shape[1]} classes but the dataset has "
                f"{ds.num_classes} ({ds.classes[:10]}); check dataset.label_column",
                field="teacher.source",
            )
        stage("caching_teacher", 0.03, "running the teacher over the data")
        needs_train = any(a != "student" for a in spec.arms)
        t0 = time.perf_counter()
        logits, cache_hit = core._teacher_logits(teacher, spec.teacher, ds, cache_root,  # type: ignore[arg-type]
                                                 needs_train, inference_batch_size(dev), hooks,
                                                 max_bytes=limits.cache_max_bytes)  # fmt: skip
        cache_seconds = time.perf_counter() - t0
        teacher_val = core._np_accuracy(logits["val"], ds.y_val)
        teacher_test = core._np_accuracy(logits["test"], ds.y_test)
        core._check_teacher_accuracy(spec, teacher_val, ds.num_classes)
        teacher_info = {"format": kind, "fingerprint": teacher.fingerprint,
                        "params": teacher.param_count, "size_bytes": folder.size_bytes,
                        "input": None, "model_type": folder.model_type}  # fmt: skip
        teacher.release()  # the cache holds all the teacher knows about this data

        data = core.train_data(ds, logits, dev, needs_train, devices=devices)
        x_test, y_test = torch.from_numpy(ds.x_test), torch.from_numpy(ds.y_test)
        progress = Progress(total_epochs=spec.epoch_budget * len(spec.arms),
                            start=core.TRAIN_SPAN[0], end=core.TRAIN_SPAN[1])  # fmt: skip
        run_key = core._run_key(spec, ds, teacher_info)  # type: ignore[arg-type]
        run = core.ArmRun(spec, data, dev, out_dir, hooks, progress, amp_dtype, run_key, resume,
                          devices)  # fmt: skip
        arms, students = core.train_arms(run, new_student, x_test, y_test)

        stage("exporting", core.TRAIN_SPAN[1], "exporting the student to ONNX")
        hooks.check_cancel()
        facts = TextRunFacts(spec=spec, dataset=ds, teacher=teacher_info,
                             teacher_val_accuracy=teacher_val, teacher_test_accuracy=teacher_test,
                             device=str(dev), amp=str(amp_dtype).removeprefix("torch.") if amp_dtype else None,
                             cache_seconds=cache_seconds, cache_hit=cache_hit, started=started,
                             tokenizer=tokenizer)  # fmt: skip
        report = write_text_outputs(out_dir, facts, students[spec.method], arms,
                                    on_stage=lambda s, f: stage(s, f, ""))  # fmt: skip
    hooks.emit(ProgressEvent(kind="done", stage="evaluating", message="done", progress=1.0))
    return report
