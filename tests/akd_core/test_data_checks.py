"""Dataset class checks name what they found, so a user sees which classes went missing."""

from __future__ import annotations

import numpy as np
import pytest

from akd_core.data.checks import check_classes
from akd_core.errors import DatasetError


def test_a_single_class_is_refused_naming_it() -> None:
    with pytest.raises(DatasetError) as err:
        check_classes(np.zeros(4, dtype=np.int64), ["cat"], "pets.npz")
    assert str(err.value).endswith(
        "dataset 'pets.npz': found 1 class ('cat'); classification needs at least 2"
    )
    assert err.value.field == "dataset.source"


def test_a_class_without_training_samples_is_named() -> None:
    with pytest.raises(DatasetError, match="class\\(es\\) 'dog' have no training sample"):
        check_classes(np.array([0, 0, 2]), ["cat", "dog", "emu"], "pets.npz")
    check_classes(np.array([0, 1, 2]), ["cat", "dog", "emu"], "pets.npz")  # all present: fine
