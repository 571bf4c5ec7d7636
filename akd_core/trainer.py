"""The training loop of one arm (annealing, kd or student), resumable epoch by epoch.

Its parts: arm_feed (the batches' rows and teacher logits), step_loss (the loss of each
phase, micro-batches), arm_resume (the checkpoint), evaluation (validation accuracy).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from akd_core.arm_feed import ArmFeed
from akd_core.arm_resume import ArmCheckpoint, cpu_state
from akd_core.arm_setup import PhasePlan, Progress, TrainData, plan_arm
from akd_core.batches import EpochBatches
from akd_core.checkpoint import checkpoint_path
from akd_core.compile_forward import ForwardChoice, choose_forward
from akd_core.device import channels_last_for
from akd_core.distributed import Shard, ddp_forward_choice
from akd_core.errors import TrainingError
from akd_core.evaluation import accuracy
from akd_core.events import Hooks, ProgressEvent
from akd_core.optim import build_optimizer, build_scheduler
from akd_core.records import ArmResult, BestEpoch, EpochRecord, LoopState
from akd_core.schedule import phi, temperature_at
from akd_core.spec import JobSpec
from akd_core.step_loss import PhaseLosses, micro_slices

# Imported from here by the pipeline, the tests and the benchmarks.
__all__ = ["ArmResult", "ArmTrainer", "PhasePlan", "Progress", "TrainData", "accuracy"]
__all__ += ["micro_slices", "plan_arm"]


class ArmTrainer:
    """Trains one arm's student through its phases, checkpointing after every epoch."""

    def __init__(
        self,
        arm: str,
        spec: JobSpec,
        model: nn.Module,
        data: TrainData,
        device: torch.device,
        out_dir: Path,
        hooks: Hooks,
        progress: Progress,
        amp_dtype: torch.dtype | None = None,
        run_key: str = "",
        shard: Shard | None = None,
    ) -> None:
        self.run_key = run_key  # identifies spec + data + teacher; a checkpoint must match it
        self.shard = shard or Shard()  # this process's rows of each batch (data-parallel)
        self.arm, self.spec, self.model, self.data = arm, spec, model.to(device), data
        self.device, self.hooks, self.progress = device, hooks, progress
        self.ckpt = checkpoint_path(out_dir, arm)
        self.phases = plan_arm(arm, spec)
        self.amp_dtype = amp_dtype
        self.scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        # On the training device: the shuffle and the augmentation draws never cross to the host.
        self.generator = torch.Generator(device).manual_seed(spec.seed * 1009 + len(arm))
        self.batches = EpochBatches(device, spec.optimizer.batch_size)
        if channels_last_for(self.model, device, amp_dtype):
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.forward: Callable[[torch.Tensor], torch.Tensor] = self.model  # see _choose_forward
        self.forward_choice: ForwardChoice | None = None
        self.feed = ArmFeed(data, self.batches, self.shard, spec.optimizer.batch_size)
        self.losses = PhaseLosses(spec.kd)
        parts = (self.model, self.scaler, self.generator, device)
        # One writer: every rank of a data-parallel job holds the same weights.
        self.checkpoint = ArmCheckpoint(self.ckpt, arm, run_key, *parts, self.shard.rank == 0)

    def amp(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast to the mixed-precision dtype asked for, or nothing."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # -- the loop, top to bottom -------------------------------------------------------
    def run(self, resume: bool) -> ArmResult:
        """Train every phase (resuming from the checkpoint when asked) and return the result."""
        saved = self.checkpoint.load() if resume else None
        if saved is not None and saved.done:  # its epochs count for the run's progress
            self.progress.done_epochs += sum(p.epochs for p in self.phases)
            return self._result(saved.loop)
        loop = LoopState()
        if saved is not None:
            loop = saved.loop
            self.checkpoint.restore(saved)
        self._choose_forward()
        done_before = sum(p.epochs for p in self.phases[: loop.phase_idx]) + loop.epoch
        self.progress.done_epochs += done_before
        started, seconds_before = time.perf_counter(), loop.train_seconds

        while loop.phase_idx < len(self.phases):
            plan = self.phases[loop.phase_idx]
            steps = self._steps_per_epoch()
            # Fused kernels: one launch per step for all parameters (CUDA only).
            optimizer = build_optimizer(
                self.model, self.spec.optimizer, fused=self.device.type == "cuda"
            )
            scheduler = build_scheduler(optimizer, self.spec.optimizer, plan.epochs, steps)
            if saved is not None and loop.epoch > 0:  # resuming inside this phase
                optimizer.load_state_dict(saved.optimizer)
                scheduler.load_state_dict(saved.scheduler)
            saved = None
            self.hooks.emit(self._event("phase", plan, f"{self.arm}: {plan.stage} starts"))
            while loop.epoch < plan.epochs:
                record = self._train_epoch(plan, loop.epoch, steps, optimizer, scheduler)
                loop.history.append(record)
                best = loop.best  # of the current phase, on the validation split
                if best is None or record.val_accuracy > best.val_accuracy:
                    loop.best = BestEpoch(
                        val_accuracy=record.val_accuracy,
                        epoch=record.epoch,
                        phase=plan.number,
                        state=cpu_state(self.model),
                    )
                loop.epoch += 1
                loop.train_seconds = seconds_before + time.perf_counter() - started
                self.checkpoint.save(loop, optimizer, scheduler)
            # Phase 2 starts from the best Phase-1 student, with a fresh optimizer and schedule.
            loop.phase_idx, loop.epoch = loop.phase_idx + 1, 0
            if loop.phase_idx < len(self.phases):
                assert loop.best is not None  # every phase trains at least one epoch
                self.model.load_state_dict(loop.best.state)
                loop.best = None
        self.checkpoint.save(loop, done=True)
        return self._result(loop)

    def _train_epoch(
        self,
        plan: PhasePlan,
        epoch: int,
        steps: int,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> EpochRecord:
        """One pass over the training data; returns the history record of this epoch."""
        d, bs = self.data, self.spec.optimizer.batch_size
        T: int | None = None
        phi_T: float | None = None
        if plan.loss == "anneal":
            tau_max = self.spec.annealing.tau_max
            T = temperature_at(epoch, plan.epochs, tau_max)
            phi_T = phi(T, tau_max)
        self.model.train()
        if self.shard.world > 1:
            # Dropout draws from this process's global RNG, and only rank 0's is checkpointed:
            # each rank reseeds it per epoch (distinct per rank, fixed by the job), so ranks
            # never share masks and a resumed epoch draws as it would have uninterrupted.
            torch.manual_seed(self.shard.epoch_seed(self.spec.seed, self.arm, plan.number, epoch))
        t0 = time.perf_counter()
        perm = self.batches.order(len(d.x_train), self.generator)  # (N,) on the device
        # Splits kept in host memory are gathered there: one copy of the order per epoch.
        on_host = self.batches.on_host(d.x_train, d.y_train, d.teacher_train)
        perm_host = perm.cpu() if on_host else None
        # Summed on the device: a .item() per step would stall the GPU pipeline.
        total_loss, seen = torch.zeros((), device=self.device), 0
        with self.feed.read_ahead(perm if perm_host is None else perm_host, steps):
            for step in range(steps):
                self.hooks.check_cancel()
                rows = slice(step * bs, (step + 1) * bs)
                idx = perm[rows]
                mine = self.shard.rows(idx)
                mine_host = None if perm_host is None else self.shard.rows(perm_host[rows])
                optimizer.zero_grad(set_to_none=True)
                loss = self._step(plan, mine, mine_host, phi_T, len(idx))
                self.scaler.step(optimizer)
                self.scaler.update()
                scheduler.step()
                total_loss += loss * len(idx)
                seen += len(idx)
        # Summed over the ranks; .item() also waits for the GPU: honest timing.
        mean_loss = self.shard.sum(total_loss).item() / max(seen, 1)
        seconds = time.perf_counter() - t0
        if not math.isfinite(mean_loss):
            raise TrainingError(
                f"{self.arm}: the training loss became {mean_loss} in epoch {epoch + 1}; "
                "lower optimizer.lr or check the scale of the teacher logits"
            )
        # fp32, as the test split and the exported ONNX are: the best epoch is chosen on that.
        val = accuracy(self.model, d.x_val, d.y_val, max(bs, 256), decode=d.decode)
        self.progress.advance(seconds)
        record = EpochRecord(
            phase=plan.number,
            epoch=epoch + 1,
            T=T,
            phi=phi_T,
            train_loss=mean_loss,
            val_accuracy=val,
            lr=optimizer.param_groups[0]["lr"],
            seconds=seconds,
        )
        event = self._event(
            "epoch",
            plan,
            "",
            epoch=record.epoch,
            T=record.T,
            phi=record.phi,
            train_loss=record.train_loss,
            val_accuracy=record.val_accuracy,
            samples_per_s=seen / seconds,
        )
        self.hooks.emit(event)
        return record

    def _step(
        self,
        plan: PhasePlan,
        idx: torch.Tensor,
        idx_host: torch.Tensor | None,
        phi_T: float | None,
        batch_rows: int,
    ) -> torch.Tensor:
        """Forward and backward of this process's rows `idx` of a batch of `batch_rows`, micro-
        batch by micro-batch; the detached loss, as this process's share of the batch mean.
        Nothing here waits for the device: no .item(), no host copy of a batch."""
        xb, yb = self.feed.fetch(idx, idx_host)
        if self.data.augment is not None:  # on the device, drawn on the device
            # Drawn for the whole batch, applied to this rank's rows: any world size
            # augments a global batch the same way.
            start = self.shard.span(batch_rows).start
            xb = self.data.augment(xb, self.generator, start=start, batch_rows=batch_rows)
        total = torch.zeros((), device=self.device)
        parts = micro_slices(len(idx), self.spec.optimizer.resolved_micro_batch_size)
        for i, part in enumerate(parts):
            part_host = None if idx_host is None else idx_host[part]
            with self.shard.accumulating(self.forward, last=i == len(parts) - 1):
                with self.amp():
                    out = self.forward(xb[part]).float()  # (b, K) student logits
                tb = self.feed.teacher(plan.loss, xb[part], idx[part], part_host)
                loss = self.losses(plan.loss, out, yb[part], tb, phi_T)
                # The batch loss is the mean over its rows: each micro-batch's mean weighted
                # by its share of rows, so the accumulated gradient equals the whole batch's
                # (x world: DDP averages the ranks' gradients, where the batch mean sums them).
                share = (part.stop - part.start) / batch_rows
                self.scaler.scale(loss * (share * self.shard.world)).backward()
            total += loss.detach() * share
        return total

    def _choose_forward(self) -> None:
        """Compile the training forward or not, as optimizer.compile says (once per arm)."""
        if self.shard.world > 1:  # DDP's own hooks run around the eager forward
            self.forward = self.shard.wrap(self.model, self.device)
            self.forward_choice = ddp_forward_choice(self.spec, self.shard.world)
            return
        n = min(len(self.data.x_train), self.spec.optimizer.resolved_micro_batch_size)
        first = torch.arange(n, device=self.device)
        self.forward, self.forward_choice = choose_forward(
            self.model,
            self.spec.optimizer.compile,
            self.device,
            lambda: self.feed.fetch(first, first.cpu())[0],
            self.amp,
        )

    def _steps_per_epoch(self) -> int:
        n, bs = len(self.data.x_train), self.spec.optimizer.batch_size
        # A trailing batch that leaves a process one sample would break BatchNorm in train
        # mode: drop it (data-parallel: each of the `world` processes needs two rows).
        return n // bs + (1 if n % bs >= 2 * self.shard.world else 0) if n > 1 else 1

    def _event(self, kind: str, plan: PhasePlan, message: str, **metrics: Any) -> ProgressEvent:
        return ProgressEvent(
            kind=kind,
            stage=plan.stage,
            arm=self.arm,
            message=message,
            progress=self.progress.fraction(),
            phase=plan.number,
            epochs=plan.epochs,
            eta_s=self.progress.eta_s(),
            **metrics,  # an epoch's figures: epoch, T, phi, train_loss, ... samples_per_s
        )

    def _result(self, loop: LoopState) -> ArmResult:
        best = loop.best
        if best is None or not math.isfinite(best.val_accuracy):
            raise TrainingError(f"{self.arm}: no epoch was trained")
        return ArmResult(
            arm=self.arm,
            best_state=best.state,
            best_val_accuracy=best.val_accuracy,
            best_phase=best.phase,
            best_epoch=best.epoch,
            history=list(loop.history),
            train_seconds=float(loop.train_seconds),
            forward=self.forward_choice,
        )
