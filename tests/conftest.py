"""Fixtures shared by the whole suite: a small ONNX teacher trained here on builtin:digits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Two cores are shared by the test processes; one torch thread each keeps runs predictable.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_teacher(tmp_path_factory) -> Path:
    """A CNN teacher (test accuracy > 90%) trained on builtin:digits, seed 0, saved as ONNX."""
    from akd_core.reference_teacher import make_reference_teacher

    path, acc = make_reference_teacher(
        tmp_path_factory.mktemp("teacher") / "teacher.onnx", arch="cnn-small", epochs=15
    )
    assert acc > 0.9, f"reference teacher too weak: {acc}"
    return path


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL cluster for the session, or the reason it could not be started."""
    from tests.pg_cluster import PostgresCluster, PostgresUnavailable

    cluster = PostgresCluster()
    try:
        cluster.start()
    except (PostgresUnavailable, OSError, KeyError, subprocess.SubprocessError) as exc:
        cluster.stop()
        yield f"PostgreSQL could not be started: {exc}"
        return
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """The URL of a fresh, empty PostgreSQL database; skips (with the reason) without one."""
    if isinstance(postgres_cluster, str):
        pytest.skip(postgres_cluster)
    return postgres_cluster.create_database()
