"""One progress bar for `akd distill` (ProgressEvent) and `akd submit --wait` (streamed dicts)."""

from __future__ import annotations

from akd_core.events import ProgressEvent
from akd_core.progress_bar import ProgressBar, describe

EPOCH = ProgressEvent("epoch", "annealing", arm="annealing", progress=0.5, phase=1, epoch=2,
                      epochs=20, T=9, phi=0.2, train_loss=1.23456, val_accuracy=0.8125)  # fmt: skip


def test_an_epoch_reads_the_same_from_the_library_and_from_the_stream():
    label = "annealing/annealing ep 2/20 T=9 phi=0.20 loss=1.2346 val=0.812"
    assert describe(EPOCH.to_dict()) == label
    streamed = EPOCH.to_dict() | {"attempt": 1}  # what the API stores and streams
    assert describe(streamed) == label


def test_states_stages_and_log_lines():
    assert describe({"state": "succeeded"}) == "succeeded"
    assert describe({"kind": "phase", "stage": "exporting", "progress": 0.9}) == "exporting"
    assert describe({"kind": "epoch", "stage": "finetuning", "epoch": 1}) == "finetuning ep 1/?"
    assert describe({"kind": "log", "message": "attempt 1 started"}) is None


def test_the_bar_follows_progress_and_keeps_its_label_over_log_lines(capsys):
    bar = ProgressBar(enabled=True)
    bar(EPOCH)
    assert bar.bar is not None
    assert bar.bar.n == 500
    bar({"kind": "log", "message": "x", "progress": 0.75})
    assert bar.bar.n == 750
    assert bar.bar.desc.startswith("annealing/annealing ep 2/20")
    bar.close()
    assert "ep 2/20" in capsys.readouterr().err


def test_a_quiet_bar_prints_nothing(capsys):
    bar = ProgressBar(enabled=False)
    bar(EPOCH)
    bar.close()
    assert capsys.readouterr().err == ""


def test_a_run_refused_before_its_first_event_prints_no_bar(capsys):
    bar = ProgressBar(enabled=True)  # `akd distill` makes it before checking the spec
    bar.close()
    assert capsys.readouterr().err == ""
