"""An epoch's shuffled batches on the training device, without host round-trips.

The shuffle is drawn once per epoch by a generator on the training device. A split that
lives on the device is indexed there. A split too large for the device stays in (pinned)
host memory: each batch is gathered into one of two staging buffers and copied over without
blocking, so the host gathers batch s+1 while the device still computes step s; the buffer
of step s-1 is reused only once its copy has finished (a CUDA event, not a stream sync).
"""

from __future__ import annotations

import torch


class StagedGather:
    """Rows of a host tensor gathered into two alternating staging buffers, then copied."""

    def __init__(self, src: torch.Tensor, device: torch.device, rows: int) -> None:
        self.src, self.device = src, device
        pin = device.type == "cuda"  # only a pinned buffer makes non_blocking really async
        shape = (rows, *src.shape[1:])
        self.buffers = [torch.empty(shape, dtype=src.dtype, pin_memory=pin) for _ in range(2)]
        self.copied: list[torch.cuda.Event | None] = [None, None]
        self.turn = 0

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        """Rows `idx` (a host index tensor) of the source, on the device."""
        i, self.turn = self.turn, self.turn ^ 1
        done = self.copied[i]
        if done is not None:
            done.synchronize()  # the copy that last read this buffer (two steps ago) is over
        buf = self.buffers[i][: len(idx)]
        torch.index_select(self.src, 0, idx, out=buf)
        if self.device.type != "cuda":
            return buf.clone()  # no copy engine to overlap with; never alias the buffer
        out = buf.to(self.device, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self.copied[i] = event
        return out


class EpochBatches:
    """Gathers rows of several same-length tensors for one epoch's shuffled order."""

    def __init__(self, device: torch.device, rows: int) -> None:
        self.device, self.rows = device, rows
        self._staged: dict[int, StagedGather] = {}

    def order(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """This epoch's permutation of n rows, drawn on the generator's device."""
        return torch.randperm(n, generator=generator, device=generator.device)

    def on_host(self, *tensors: torch.Tensor | None) -> bool:
        """Whether any of `tensors` stays off the device (then the order is also needed there)."""
        return any(t is not None and t.device.type != self.device.type for t in tensors)

    def take(
        self, src: torch.Tensor, idx: torch.Tensor, idx_host: torch.Tensor | None
    ) -> torch.Tensor:
        """Rows of `src` on the training device: indexed in place when `src` lives there,
        else staged through pinned memory with the host copy of the indices."""
        if src.device.type == self.device.type:
            return src[idx]
        assert idx_host is not None  # the trainer copies the order to the host once per epoch
        staged = self._staged.get(id(src))
        if staged is None:
            staged = self._staged[id(src)] = StagedGather(src, self.device, self.rows)
        return staged(idx_host)
