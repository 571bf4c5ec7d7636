"""Several devices in one job: data-parallel training of an arm with torch.distributed DDP.

The launching process keeps everything but the training of the arm (data, teacher logits,
export, report). `train_arm_parallel` starts one process per device (rank), each training
the same arm on its shard of every global batch: all ranks draw the same shuffled order
(the same seeded generator) and rank r takes the r-th of `world` contiguous slices of each
batch. DDP averages the gradients; each rank weights its loss by its rows' share of the
global batch times `world`, so the step equals one process's step on the whole batch. Only
rank 0 writes checkpoints and sends progress events; the launcher reads the arm's result
from the finished checkpoint, as a resume of a finished arm does. gloo on CPU, NCCL on CUDA
(rank r on cuda:r of the devices the process sees). Streamed data (larger than memory) is
sent as row ids and the data cache entry's path: each rank reopens the entry and reads only
its own slice of each batch, so no rank holds the split. Random augmentation (crop-flip)
is drawn for the whole global batch by every rank from the shared seeded generator, each
applying its own rows' draws, so any world size augments a batch alike; each rank then runs
its own teacher (loaded in its own sandbox from the job's file) on its augmented rows.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import queue
import socket
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from akd_core.arm_setup import Progress, TrainData
from akd_core.checkpoint import checkpoint_path
from akd_core.compile_forward import ForwardChoice
from akd_core.device import place
from akd_core.errors import JobCancelled, SpecError, TrainingError
from akd_core.events import Hooks
from akd_core.records import ArmResult, load_resume_state
from akd_core.spec import JobSpec
from akd_core.teacher_source import TeacherSource, loaded_teacher

# How long the launcher waits between looks at its ranks, its event queue and the cancel check.
POLL_S = 0.2
# DDP's reducer warns (once per rank) when a gradient's strides differ from its parameter's.
GRAD_STRIDES_WARNING = "Grad strides do not match bucket view strides"


@dataclass(frozen=True)
class Shard:
    """This process's place in a data-parallel run; rank 0 of 1 is a single-process run."""

    rank: int = 0
    world: int = 1

    def epoch_seed(self, seed: int, arm: str, phase: int, epoch: int) -> int:
        """This rank's seed of the global RNG (dropout) for one epoch: fixed, distinct per rank."""
        key = f"{seed}|{arm}|{phase}|{epoch}|{self.rank}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch's row indices."""
        return idx if self.world == 1 else idx[self.span(len(idx))]

    def span(self, n: int) -> slice:
        """This rank's rows of a batch of n: the first n % world ranks take one row more."""
        q, r = divmod(n, self.world)
        start = self.rank * q + min(self.rank, r)
        return slice(start, start + q + (self.rank < r))

    def wrap(self, model: nn.Module, device: torch.device) -> Callable[[torch.Tensor], Any]:
        """The forward to train with: the model, or DDP around it (gradients averaged)."""
        if self.world == 1:
            return model
        ids = [device.index if device.index is not None else 0] if device.type == "cuda" else None
        # Harmless here, and only noise to a user: crop-flip's one-channel batch (B, 1, H, W)
        # keeps channels-last strides (`.contiguous()` ignores size-1 axes), so convolutions on
        # the CPU run the student channels-last (measured faster than NCHW: resnet8 on
        # 1x32x32, 1 thread, a step 108 ms against 145 ms). Autograd keeps a gradient as the kernel made it only where it differs from
        # its parameter in the strides of size-1 axes (1x1 and one-input-channel convs, whose
        # memory order is the same), and copies every other one to its parameter's layout;
        # DDP copies gradients into its buckets whatever their strides. A rank process runs
        # nothing but this arm, so the filter reaches nothing else.
        warnings.filterwarnings("ignore", message=GRAD_STRIDES_WARNING, category=UserWarning)
        return DistributedDataParallel(model, device_ids=ids)

    def accumulating(self, forward: Any, last: bool) -> contextlib.AbstractContextManager[Any]:
        """No gradient all-reduce for a micro-batch before the step's last one (DDP no_sync)."""
        if self.world == 1 or last:
            return contextlib.nullcontext()
        no_sync: contextlib.AbstractContextManager[Any] = forward.no_sync()
        return no_sync

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """`t` summed over the ranks (in place); itself in a single-process run."""
        if self.world > 1:
            dist.all_reduce(t)
        return t


def check_devices(devices: int, device: torch.device, spec: JobSpec) -> None:
    """Refuse a device count this machine or this job cannot train with, naming why."""
    if devices < 1:
        raise SpecError(f"devices must be 1 or more; got {devices}", field="devices")
    if devices == 1:
        return
    if device.type == "cuda" and devices > torch.cuda.device_count():
        raise SpecError(
            f"devices {devices} asked for, but {torch.cuda.device_count()} GPU(s) are visible; "
            "use at most that many (or device cpu for gloo processes)",
            field="devices",
        )
    if spec.optimizer.batch_size < 2 * devices:
        raise SpecError(
            f"optimizer.batch_size {spec.optimizer.batch_size} gives fewer than 2 rows per "
            f"device on {devices} devices; raise it to at least {2 * devices}",
            field="devices",
        )


@dataclass(frozen=True)
class ParallelArm:
    """What every rank needs to train one arm (pickled to the spawned processes)."""

    arm: str
    spec: JobSpec
    model: nn.Module  # the seeded initial student, on the CPU
    # CPU tensors; each rank places them on its own device. Streamed data travels as row ids
    # and a decoder holding the data cache's path: each rank reopens it and reads its rows.
    data: TrainData
    device_type: str  # cpu | cuda
    out_dir: Path
    progress: Progress
    amp_dtype: torch.dtype | None
    run_key: str
    resume: bool
    # Random augmentation: each rank loads its own teacher (own sandbox) for its augmented rows.
    teacher: TeacherSource | None = None


def train_arm_parallel(job: ParallelArm, world: int, hooks: Hooks) -> ArmResult:
    """Train one arm on `world` devices in `world` processes; the arm's result."""
    ctx = mp.get_context("spawn")
    events: Any = ctx.Queue()
    cancel = ctx.Event()
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs = mp.start_processes(_rank_main, args=(world, address, job, events, cancel),
                               nprocs=world, join=False, start_method="spawn")  # fmt: skip
    try:
        while not _joined(procs, cancel):
            _relay(events, hooks)
            if hooks.should_cancel is not None and hooks.should_cancel():
                cancel.set()  # each rank checks it before every step
        _relay(events, hooks)
    finally:
        for p in procs.processes:  # an error in one rank: the others may wait on it forever
            if p.is_alive():
                p.terminate()
    if cancel.is_set():
        raise JobCancelled("the job was cancelled")
    # Rank 0 wrote the finished arm's checkpoint: read it as a resumed finished arm.
    from akd_core.trainer import ArmTrainer  # the trainer imports this module

    saved = load_resume_state(checkpoint_path(job.out_dir, job.arm))
    if saved is None or not saved.done:  # never train here: the ranks were to finish it
        raise TrainingError(f"{job.arm}: the data-parallel ranks ended before the arm was done")

    cpu = torch.device("cpu")
    result = ArmTrainer(job.arm, job.spec, job.model, job.data, cpu, job.out_dir, Hooks(),
                        job.progress, None, job.run_key).run(resume=True)  # fmt: skip
    # What the ranks trained with, for report.json's student.compile or baselines.<arm>.compile.
    result.forward = ddp_forward_choice(job.spec, world)
    return result


def ddp_forward_choice(spec: JobSpec, world: int) -> ForwardChoice:
    """The forward every data-parallel rank trains with: eager, DDP's hooks run around it."""
    why = f"data-parallel on {world} processes: eager under DDP"
    return ForwardChoice(spec.optimizer.compile, False, why)


def _joined(procs: Any, cancel: Any) -> bool:
    try:
        return bool(procs.join(timeout=POLL_S))
    except mp.ProcessRaisedException as exc:
        if cancel.is_set():
            return True
        last = str(exc).strip().splitlines()[-1]  # the rank's exception: "Type: message"
        raise TrainingError(
            f"data-parallel training failed on rank {exc.error_index}: {last}"
        ) from exc
    except mp.ProcessExitedException as exc:
        raise TrainingError(
            f"data-parallel training failed: rank {exc.error_index} exited with code "
            f"{exc.exit_code}"
        ) from exc


def _relay(events: Any, hooks: Hooks) -> None:
    for event in _drain(events):
        hooks.emit(event)


def _drain(events: Any) -> Iterator[Any]:
    while True:
        try:
            yield events.get_nowait()
        except queue.Empty:
            return


def _rank_main(
    rank: int, world: int, address: str, job: ParallelArm, events: Any, cancel: Any
) -> None:
    """One rank: join the group, place the data on this rank's device, train the arm."""
    from akd_core.trainer import ArmTrainer

    cuda = job.device_type == "cuda"
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    else:  # the ranks share the CPU cores: one share each, not all of them each
        torch.set_num_threads(max(1, torch.get_num_threads() // world))
    # Loaded before joining the group: a rank that cannot load it fails alone, with its reason.
    with loaded_teacher(job.teacher, device) as teacher:
        dist.init_process_group("nccl" if cuda else "gloo", init_method=address, rank=rank,
                                world_size=world)  # fmt: skip
        try:
            d, cached = job.data, job.data.teacher_train
            # Streamed data: x holds row ids, kept on the host; each rank reads its own rows.
            host = d.decode is not None
            data = replace(
                d,
                x_train=d.x_train if host else place(d.x_train, device),
                y_train=place(d.y_train, device),
                x_val=d.x_val if host else place(d.x_val, device),
                y_val=place(d.y_val, device),
                teacher_train=None if cached is None else place(cached, device),
                teacher_fn=d.teacher_fn if teacher is None else teacher.predict,
            )
            hooks = Hooks(events.put if rank == 0 else None, cancel.is_set)
            # Our own copy: the pickled model's tensors sit in memory shared by every rank.
            model = copy.deepcopy(job.model)
            ArmTrainer(job.arm, job.spec, model, data, device, job.out_dir, hooks, job.progress,
                       job.amp_dtype, job.run_key, shard=Shard(rank, world)).run(job.resume)  # fmt: skip
            # Tear the group down together: a rank that leaves while rank 0 still writes the
            # final checkpoint closes gloo's connections under its peer, which can abort it.
            dist.barrier()
        finally:
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
