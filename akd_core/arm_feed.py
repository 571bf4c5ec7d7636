"""Where a training step's rows come from: resident or streamed data (read a step ahead),
and the teacher's logits of the same rows."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from akd_core import prefetch
from akd_core.arm_setup import TrainData
from akd_core.batches import EpochBatches
from akd_core.distributed import Shard


class ArmFeed:
    """Inputs, labels and teacher logits of an arm's batches, on the training device."""

    def __init__(
        self, data: TrainData, batches: EpochBatches, shard: Shard, batch_size: int
    ) -> None:
        self.data, self.batches, self.shard, self.batch_size = data, batches, shard, batch_size
        self._ahead: prefetch.Prefetcher[torch.Tensor] | None = None  # see read_ahead

    def fetch(
        self, idx: torch.Tensor, idx_host: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and labels of rows `idx` on the training device, as stored."""
        d = self.data
        yb = self.batches.take(d.y_train, idx, idx_host)
        if d.decode is None:
            return self.batches.take(d.x_train, idx, idx_host), yb
        # Streamed data: x holds row ids (host); rows are read and decoded to float32 on the
        # host, then sent over through a pinned staging buffer (no sync on the device).
        if self._ahead is not None:  # read and decoded one step ahead, in this same order
            return self.batches.send(self._ahead.next()), yb
        ids = d.x_train[idx_host if idx_host is not None else idx.to(d.x_train.device)]
        return self.batches.send(d.decode(ids)), yb

    @contextlib.contextmanager
    def read_ahead(self, order: torch.Tensor, steps: int) -> Iterator[None]:
        """Streamed data: this epoch's batches read and decoded on a thread, a step ahead."""
        d, bs, decode = self.data, self.batch_size, self.data.decode
        if decode is None or prefetch.AHEAD == 0:  # resident data is indexed in the step
            yield
            return
        order = order.cpu()  # the host copy already, where there is one
        ids = [d.x_train[self.shard.rows(order[s * bs : (s + 1) * bs])] for s in range(steps)]
        with prefetch.Prefetcher(lambda s: decode(ids[s]), steps, prefetch.AHEAD) as ahead:
            self._ahead = ahead
            try:
                yield
            finally:
                self._ahead = None

    def teacher(
        self, loss: str, xb: torch.Tensor, idx: torch.Tensor, idx_host: torch.Tensor | None
    ) -> torch.Tensor | None:
        """(B, K) teacher logits of the batch: cached rows, or the frozen teacher run on the
        same (augmented) batch; None for the cross-entropy phase (`loss` "ce"), which needs none."""
        d = self.data
        if loss == "ce":
            return None
        if d.teacher_train is not None:
            return self.batches.take(d.teacher_train, idx, idx_host)
        assert d.teacher_fn is not None
        return d.teacher_fn(xb)
