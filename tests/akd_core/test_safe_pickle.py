"""The restricted unpickler behind CIFAR batches: plain data in, nothing executed, bounded work."""

import pickle

import numpy as np
import pytest

from akd_core.data.safe_pickle import MAX_CONTAINERS, safe_loads
from akd_core.errors import DatasetError


@pytest.mark.timeout(20)
def test_shared_references_are_rebuilt_once_not_exponentially():
    # 30 levels of x = [x, x]: a few hundred bytes of pickle, 2**30 paths through it.
    x: list = []
    for _ in range(30):
        x = [x, x]
    data = pickle.dumps({b"data": x, b"labels": [0, 1]}, protocol=2)
    assert len(data) < 1000
    out = safe_loads(data, "batch")
    assert out[b"labels"] == [0, 1]
    assert out[b"data"][0] is out[b"data"][1]  # sharing is kept, not copied


def test_too_many_containers_are_refused():
    data = pickle.dumps([[i] for i in range(MAX_CONTAINERS + 1)], protocol=2)
    with pytest.raises(DatasetError, match="containers"):
        safe_loads(data, "batch")


def test_plain_batch_round_trips():
    batch = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"labels": [3, 4]}
    out = safe_loads(pickle.dumps(batch, protocol=2), "batch")
    np.testing.assert_array_equal(out[b"data"], batch[b"data"])
    assert out[b"labels"] == [3, 4]
