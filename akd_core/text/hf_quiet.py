"""transformers without its own progress bars: AKD reports progress itself (events, --quiet)."""

from __future__ import annotations

from typing import Any


def transformers_quiet() -> Any:
    """The transformers module, with its tqdm bars ("Loading weights", "Writing model shards") off.

    Called wherever AKD loads or saves a transformers model: those bars went to stderr even
    under `akd distill --quiet` and into every worker's log.
    """
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return transformers
