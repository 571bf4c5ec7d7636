"""How another process loads the job's teacher again: what it was loaded from, never the live one.

A data-parallel rank with random augmentation runs the teacher on its own augmented rows. The
launcher's teacher lives behind a pipe to its sandbox process and cannot cross into a spawned
rank; each rank instead loads its own from the same file, through the same sandboxed loader
(`load_teacher`), and checks that it got the same bytes the job started with.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from akd_core.errors import TeacherLoadError
from akd_core.spec import TeacherSpec
from akd_core.teachers import Teacher, load_teacher


@dataclass(frozen=True)
class TeacherSource:
    """The teacher's spec, its resolved local file, the data's sizes and the file's fingerprint."""

    spec: TeacherSpec
    path: Path
    input_shape: tuple[int, ...]
    num_classes: int
    fingerprint: str  # the sha256 the job was keyed on: another file must not slip in

    @classmethod
    def of(cls, teacher: Teacher, spec: TeacherSpec, path: Path,
           input_shape: tuple[int, ...], num_classes: int) -> TeacherSource:  # fmt: skip
        """What loads `teacher` (loaded from `path` for data of these sizes) again elsewhere."""
        return cls(spec, Path(path), tuple(input_shape), num_classes, teacher.fingerprint)

    def load(self, device: torch.device) -> Teacher:
        """The teacher in its own sandbox process, as run_job loads it; refused if the file changed."""
        from akd_core.sandbox.proxy import SandboxPolicy  # the proxy imports akd_core.teachers

        # No warm spare: this process loads exactly one teacher.
        teacher = load_teacher(self.spec, self.path, device, input_shape=self.input_shape,
                               num_classes=self.num_classes,
                               sandbox=SandboxPolicy(keep_warm=False))  # fmt: skip
        if teacher.fingerprint != self.fingerprint:
            teacher.release()
            raise TeacherLoadError(
                f"{self.path.name!r} changed while the job ran (sha256 {teacher.fingerprint[:12]}, "
                f"was {self.fingerprint[:12]}); start the job again with the file left as it is",
                field="teacher.source",
            )
        return teacher


@contextmanager
def loaded_teacher(source: TeacherSource | None, device: torch.device) -> Iterator[Teacher | None]:
    """The teacher `source` loads (None without one), released when the block ends."""
    if source is None:
        yield None
        return
    teacher = source.load(device)
    try:
        yield teacher
    finally:
        teacher.release()  # stops its sandbox process
