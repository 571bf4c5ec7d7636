"""The terminal progress bar of `akd distill` and `akd submit --wait`, fed by progress events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from akd_core.events import ProgressEvent


def describe(event: Mapping[str, Any]) -> str | None:
    """The bar's label for one event (as ProgressEvent.to_dict() or the API streams it).

    None for a line with neither state nor stage (a log line): the bar keeps its last label.
    """
    label = event.get("state") or event.get("stage")
    if not label:
        return None
    if event.get("arm"):
        label = f"{event['arm']}/{label}"
    extra = event.get("extra") or {}
    if "decoded" in extra:  # the dataset being decoded into the data cache
        label += f" {extra['decoded']}/{extra['total']} decoded"
    if event.get("epoch") is not None:
        label += f" ep {event['epoch']}/{event.get('epochs') or '?'}"
        if event.get("phi") is not None:
            label += f" T={event.get('T')} phi={event['phi']:.2f}"
        if event.get("train_loss") is not None:
            label += f" loss={event['train_loss']:.4f}"
    if event.get("val_accuracy") is not None:
        label += f" val={event['val_accuracy']:.3f}"
    return str(label)


class ProgressBar:
    """A tqdm bar over a run's progress fraction (0..1), labelled with the latest stage and epoch."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, event: ProgressEvent | Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            # Drawn at the first event, not before: a run refused up front (a misspelt field,
            # a missing file) prints its error alone, without an empty 0% bar above it.
            from tqdm import tqdm  # only a terminal run needs it

            self.bar = tqdm(total=1000, unit="", bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        data = event.to_dict() if isinstance(event, ProgressEvent) else event
        if "progress" in data:
            self.bar.n = int(float(data["progress"]) * 1000)
        label = describe(data)
        if label is not None:
            self.bar.set_description_str(label)
        self.bar.refresh()

    def close(self) -> None:
        """End the bar's line (safe to call when disabled)."""
        if self.bar is not None:
            self.bar.close()
