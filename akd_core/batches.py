"""An epoch's shuffled batches on the training device, without host round-trips.

The shuffle is drawn once per epoch by a generator on the training device. A split that
lives on the device is indexed there. A split too large for the device stays in (pinned)
host memory: each batch is gathered into one of two staging buffers and copied over without
blocking, so the host gathers batch s+1 while the device still computes step s; the buffer
of step s-1 is reused only once its copy has finished (a CUDA event, not a stream sync).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


class Staging:
    """Two alternating host buffers (pinned on CUDA) for batches of one shape, each filled on
    the host and copied to the device without blocking."""

    def __init__(
        self, tail: tuple[int, ...], dtype: torch.dtype, device: torch.device, rows: int
    ) -> None:
        self.device = device
        pin = device.type == "cuda"  # only a pinned buffer makes non_blocking really async
        self.buffers = [torch.empty((rows, *tail), dtype=dtype, pin_memory=pin) for _ in range(2)]
        self.copied: list[torch.cuda.Event | None] = [None, None]
        self.turn = 0

    def send(self, n: int, fill: Callable[[torch.Tensor], object]) -> torch.Tensor:
        """`fill` writes n rows into a free buffer; those rows, on the device."""
        i, self.turn = self.turn, self.turn ^ 1
        done = self.copied[i]
        if done is not None:
            done.synchronize()  # the copy that last read this buffer (two steps ago) is over
        buf = self.buffers[i][:n]
        fill(buf)
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
        self._staged: dict[int | str, Staging] = {}

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
        staging = self._staging(id(src), src)
        return staging.send(
            len(idx_host), lambda buf: torch.index_select(src, 0, idx_host, out=buf)
        )

    def send(self, batch: torch.Tensor) -> torch.Tensor:
        """A batch made on the host (decoded from the data cache) on the training device."""
        if self.device.type == "cpu":
            return batch
        return self._staging("host batches", batch).send(len(batch), lambda buf: buf.copy_(batch))

    def _staging(self, key: int | str, like: torch.Tensor) -> Staging:
        staging = self._staged.get(key)
        if staging is None:
            tail = tuple(like.shape[1:])
            staging = self._staged[key] = Staging(tail, like.dtype, self.device, self.rows)
        return staging
