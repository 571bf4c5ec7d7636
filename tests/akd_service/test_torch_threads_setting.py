"""AKD_TORCH_THREADS: 'auto' shares the usable CPUs among the worker's children; bad values refused."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from akd_service.config import Settings
from akd_service.threads import threads_per_child, usable_cpus


@pytest.mark.parametrize(
    "cpus, concurrency, threads",
    [(8, 2, 4), (8, 3, 2), (2, 2, 1), (2, 1, 2), (2, 4, 1), (16, 1, 16)],
)
def test_auto_gives_each_child_an_equal_share_of_the_cores(cpus, concurrency, threads):
    assert threads_per_child("auto", concurrency, cpus=cpus) == threads


def test_a_number_is_taken_as_is_whatever_the_concurrency():
    assert threads_per_child("3", 4, cpus=2) == 3


def test_auto_counts_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 5}, raising=False)
    assert usable_cpus() == 4
    assert threads_per_child("auto", 2) == 2


def test_the_default_is_auto_and_the_environment_sets_it(monkeypatch, tmp_path):
    assert Settings(data_dir=tmp_path).torch_threads == "auto"
    monkeypatch.setenv("AKD_TORCH_THREADS", " 2 ")
    assert Settings(data_dir=tmp_path).torch_threads == "2"


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "two", "", "4 threads"])
def test_a_bad_count_is_refused_naming_the_variable_and_what_it_takes(bad, tmp_path):
    with pytest.raises(ValidationError) as err:
        Settings(data_dir=tmp_path, torch_threads=bad)
    assert "AKD_TORCH_THREADS must be 'auto' or a whole number of threads >= 1" in str(err.value)
    assert repr(bad) in str(err.value)
