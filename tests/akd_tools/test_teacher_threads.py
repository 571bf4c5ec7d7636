"""`akd teacher --threads N`: the teacher trains with N torch intra-op threads."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from akd_tools import teacher


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    teacher.add_teacher_arguments(parser)
    return parser.parse_args(list(argv))


def test_the_thread_count_reaches_torch_while_the_teacher_trains(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # restored after the test, whatever it sets
    seen: list[int] = []

    def fake_train(out: Path, *_: object, **__: object) -> tuple[Path, float]:
        seen.append(torch.get_num_threads())
        return out, 0.5

    monkeypatch.setattr("akd_core.reference_teacher.make_reference_teacher", fake_train)
    try:
        teacher.teacher_main(_parse("--out", str(tmp_path / "t.onnx"), "--threads", "3", "--quiet"))
    finally:
        torch.set_num_threads(1)  # the suite's own count (tests/conftest.py)
    assert seen == [3]


def test_a_bad_thread_count_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        _parse("--threads", "0")
    assert "--threads" in capsys.readouterr().err
