"""Device selection and data placement on this (CPU-only) machine."""

import pytest
import torch

from akd_core.device import amp_dtype_for, inference_batch_size, place, select_device
from akd_core.errors import SpecError


def test_auto_and_cpu_choose_the_cpu_here():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected
    assert select_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible")
@pytest.mark.parametrize("name", ["cuda", "cuda:0", "cuda:3"])
def test_missing_gpu_is_a_clear_error(name):
    with pytest.raises(SpecError, match="GPU") as err:
        select_device(name)
    assert err.value.field == "device"


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "gpu"])
def test_unknown_device_names_list_the_choices(name):
    with pytest.raises(SpecError, match="choose auto, cpu, cuda or cuda:N"):
        select_device(name)


def test_cpu_runs_fp32_and_keeps_data_in_place():
    cpu = torch.device("cpu")
    assert amp_dtype_for(cpu, enabled=True) is None
    t = torch.zeros(3)
    assert place(t, cpu) is t
    assert inference_batch_size(cpu) == 128
