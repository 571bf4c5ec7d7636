"""Stages are one typed list: every event names one of them, `loading` included."""

from __future__ import annotations

import pytest

from akd_core.events import STAGES, ProgressEvent


def test_every_stage_of_a_run_is_listed_in_order():
    assert STAGES == ("loading", "caching_teacher", "annealing", "finetuning", "training",
                      "exporting", "evaluating")  # fmt: skip
    assert ProgressEvent("phase", "loading").to_dict()["stage"] == "loading"


def test_an_event_with_an_unknown_stage_is_refused_naming_the_stages():
    with pytest.raises(
        ValueError, match="unknown stage 'caching'; stages: loading, caching_teacher"
    ):
        ProgressEvent("phase", "caching")
