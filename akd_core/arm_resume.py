"""An arm's resumable state: the checkpoint written after every epoch, read back on resume."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from akd_core.checkpoint import restore_rng, rng_state, save_checkpoint
from akd_core.device import restore_scaler
from akd_core.errors import SpecError
from akd_core.records import LoopState, ResumeState, load_resume_state


@dataclass(frozen=True)
class ArmCheckpoint:
    """Where one arm's state is saved, and the live objects it is saved from and restored to."""

    path: Path
    arm: str
    run_key: str  # identifies spec + data + teacher; a checkpoint must match it
    model: nn.Module
    scaler: torch.amp.GradScaler
    generator: torch.Generator  # the shuffle and augmentation stream, on the training device
    device: torch.device
    writer: bool = True  # False on the ranks of a data-parallel job other than rank 0

    def load(self) -> ResumeState | None:
        """The saved state (None when there is none), refused if another run wrote it."""
        saved = load_resume_state(self.path)
        if saved is not None and saved.run_key != self.run_key:
            raise SpecError(
                f"{self.path} was written by a run with another spec, dataset or teacher; "
                "resume only the same job (or start it in a new output folder)",
                field="resume",
            )
        return saved

    def restore(self, saved: ResumeState) -> None:
        """Put the loss scale, the weights and the generator's RNG back as they were saved."""
        restore_scaler(self.scaler, saved.scaler, self.arm)
        self.model.load_state_dict(saved.model)
        restore_rng(saved.rng, self.generator, self.device)

    def save(
        self,
        loop: LoopState,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        done: bool = False,
    ) -> None:
        """Write the arm's state atomically (the writer only); a done arm keeps no optimizer."""
        if not self.writer:
            return
        state = ResumeState(
            loop=loop,
            arm=self.arm,
            done=done,
            run_key=self.run_key,
            model=cpu_state(self.model),
            optimizer=optimizer.state_dict() if optimizer else {},
            scheduler=scheduler.state_dict() if scheduler else {},
            rng=rng_state(self.generator, self.device),
            scaler=self.scaler.state_dict(),
        )
        save_checkpoint(self.path, state.to_dict())


def cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the model's weights (the best epoch's, or the checkpoint's)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in copy.copy(model.state_dict()).items()}
