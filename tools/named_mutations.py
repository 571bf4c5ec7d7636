"""The mutations named in issue 7, each applied to a copy of the tree and run against the test
that must kill it (part of `make mutation`; never run in a shared checkout: it edits files)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TA = "tests/akd_core/"


@dataclass(frozen=True)
class Named:
    """One deliberate break: where, the exact text replaced, and the tests that must fail."""

    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


NAMED = (
    Named(
        "the trainer passes Phi = 1.0 to the annealing loss every epoch",
        "akd_core/trainer.py", "phi_T = phi(T, tau_max)", "phi_T = 1.0",
        (f"{TA}test_trainer_semantics.py::test_phi_at_every_step_follows_the_official_rule",),
    ),
    Named(
        "Phase 2 starts from the last Phase-1 student instead of the best",
        "akd_core/trainer.py", 'self.model.load_state_dict(loop.best.state)', "pass",
        (f"{TA}test_trainer_semantics.py::"
         "test_best_epoch_is_chosen_on_validation_and_phase2_starts_from_it",),
    ),
    Named(
        "the best epoch is chosen on the test split",
        "akd_core/pipeline.py",
        "x_val=place(torch.from_numpy(ds.x_val), dev),\n"
        "        y_val=place(torch.from_numpy(ds.y_val), dev),",
        "x_val=place(torch.from_numpy(ds.x_test), dev),\n"
        "        y_val=place(torch.from_numpy(ds.y_test), dev),",
        (f"{TA}test_trainer_semantics.py::test_best_epoch_never_looks_at_the_test_split",),
    ),
    Named(
        '"best" is always the last epoch',
        "akd_core/trainer.py",
        'if best is None or record.val_accuracy > best.val_accuracy:', "if True:",
        (f"{TA}test_trainer_semantics.py::"
         "test_best_epoch_is_chosen_on_validation_and_phase2_starts_from_it",),
    ),
    Named(
        "the cosine learning-rate schedule becomes constant",
        "akd_core/optim.py",
        "return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))", "return 1.0",
        (f"{TA}test_trainer_semantics.py::test_adamw_cosine_learning_rate_per_step_and_epoch",
         f"{TA}test_optim.py::test_cosine_schedule_goldens"),
    ),
    Named(
        "random augmentation and the per-batch teacher are turned off",
        "akd_core/pipeline.py",
        "random_aug = is_random(spec.dataset.augment)", "random_aug = False",
        (f"{TA}test_trainer_semantics.py::test_crop_flip_runs_the_teacher_on_each_augmented_batch",),
    ),
    Named(
        "the teacher-logit cache key ignores the teacher's fingerprint",
        "akd_core/pipeline.py",
        'key = cache_key(f"{teacher.fingerprint}|{how}", ds.fingerprint)',
        'key = cache_key(f"{how}", ds.fingerprint)',
        (f"{TA}test_cache_isolation.py::test_other_teacher_or_other_data_never_hit_the_cache",),
    ),
    Named(
        "the resume key ignores the data and teacher fingerprints",
        "akd_core/pipeline.py",
        """blob = f"{training}|{ds.fingerprint}|{teacher['fingerprint']}\"""",
        'blob = f"{training}"',
        (f"{TA}test_resume_isolation.py::test_resume_refuses_another_data_teacher_or_spec",),
    ),
    Named(
        "the checkpoint loader unpickles (weights_only turned off)",
        "akd_core/checkpoint.py",
        'map_location="cpu", weights_only=True', 'map_location="cpu", weights_only=False',
        (f"{TA}test_resume_isolation.py::test_a_planted_pickle_is_refused_and_never_runs",),
    ),
    Named(
        "the INT8 copy is always kept, whatever its accuracy",
        "akd_core/report.py",
        '"kept": bool(val_fp32 - val_int8 <= limit),', '"kept": True,',
        (f"{TA}test_int8.py::"
         "test_int8_copy_is_dropped_when_its_accuracy_drop_exceeds_the_tolerance",),
    ),
    Named(
        "the artifact route loads a job without the owner check",
        "app/api/deps.py",  # the OwnedJob dependency of the artifact (and every job) route
        "job = job_store.get_job_for_owner(session, job_id, owner)",
        "job = job_store.get_job(session, job_id)",
        ("tests/app/test_owner_and_filters.py::"
         "test_another_keys_artifacts_are_404_and_leak_nothing",),
    ),
    Named(
        "the 1 MiB limit on POST /jobs is removed",
        "app/api/routes/jobs.py", "MAX_SPEC_BYTES = 1024 * 1024", "MAX_SPEC_BYTES = 1 << 40",
        ("tests/app/test_owner_and_filters.py::"
         "test_a_spec_over_1_mib_is_413_whether_declared_or_streamed",),
    ),
    Named(
        "the ?state= filter is ignored",
        "akd_service/db/listing.py", "if state is not None:", "if False:",
        ("tests/app/test_owner_and_filters.py::test_state_filter_lists_only_jobs_in_that_state",),
    ),
    Named(
        "the lease fence is disabled",
        "worker/lease.py",
        "if not self._lost.is_set() and self._clock() - self._last_ok > self._fence_s:",
        "if False:",
        ("tests/worker/test_lease_clock.py::"
         "test_a_worker_that_cannot_renew_stops_before_another_may_claim",),
    ),
)  # fmt: skip


def check(named: Named, repo: Path, env: dict[str, str]) -> str:
    """'killed', 'SURVIVED' or 'STALE' (the text to replace is gone: update NAMED)."""
    path = repo / named.path
    original = path.read_text()
    if original.count(named.old) != 1:
        return "STALE"
    try:
        path.write_text(original.replace(named.old, named.new))
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *named.tests]
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True)
    finally:
        path.write_text(original)
    return "killed" if proc.returncode == 1 else "SURVIVED" if proc.returncode == 0 else "ERROR"


def check_all(repo: Path, env: dict[str, str]) -> list[tuple[Named, str]]:
    """Every named mutation with its verdict, in order."""
    results = []
    for named in NAMED:
        results.append((named, check(named, repo, env)))
        print(f"  {results[-1][1]:8} {named.what}", flush=True)
    return results


def render(results: list[tuple[Named, str]]) -> list[str]:
    """The table of named mutations for docs/testing.md."""
    lines = [
        "| # | mutation (issue 7) | where | killed by | result |",
        "| ---: | --- | --- | --- | --- |",
    ]
    for i, (named, verdict) in enumerate(results, 1):
        tests = "<br>".join(f"`{t.split('/')[-1]}`" for t in named.tests)
        lines.append(f"| {i} | {named.what} | `{named.path}` | {tests} | {verdict} |")
    return lines
