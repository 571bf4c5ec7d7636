"""Deterministic stratified splitting and capping, driven by a numpy Generator."""

from __future__ import annotations

import numpy as np


def allot(counts: np.ndarray, total: int) -> np.ndarray:
    """Share `total` across classes in proportion to `counts` (largest remainder, exact sum)."""
    quotas = counts * (total / max(int(counts.sum()), 1))
    base = np.floor(quotas).astype(np.int64)
    short = total - int(base.sum())
    # Ties go to the lower class index (stable sort), so the result is deterministic.
    order = np.argsort(-(quotas - base), kind="stable")
    base[order[:short]] += 1
    return base


def _pick(
    y: np.ndarray, take: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    chosen, rest = [], []
    for c, k in enumerate(take):
        idx = rng.permutation(np.flatnonzero(y == c))
        chosen.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(chosen)), np.sort(np.concatenate(rest))


def carve(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (kept, carved): carved holds ~fraction of each class, kept 1+ of each."""
    counts = np.bincount(y)
    n = max(1, round(len(y) * fraction))
    # Keep at least one sample of every class where it is: training must see them all.
    take = np.minimum(allot(counts, n), np.maximum(counts - 1, 0))
    carved, kept = _pick(y, take, rng)
    return kept, carved


def cap(y: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of a stratified subset of at most `limit` samples, with 1+ of each present class."""
    if limit >= len(y):
        return np.arange(len(y))
    counts = np.bincount(y)
    keep = np.minimum(np.maximum(allot(counts, limit), (counts > 0).astype(np.int64)), counts)
    kept, _ = _pick(y, keep, rng)
    return kept
