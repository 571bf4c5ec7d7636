"""Checkpoint details that `make mutation` showed untested: GPU checkpoints on a CPU host,
torch's environment overrides, and the exact refusal messages.

This machine has no GPU, so a GPU run is simulated: torch.cuda's RNG calls are replaced by a
recorder, and a "GPU-written" file is one whose tensors torch.save tagged as on cuda:0.
"""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest
import torch
import torch.serialization

from akd_core.checkpoint import (
    checkpoint_path,
    load_checkpoint,
    restore_rng,
    rng_state,
    save_checkpoint,
)
from akd_core.errors import TrainingError

CUDA_STATE = torch.arange(16, dtype=torch.uint8)


class FakeCuda:
    """torch.cuda's RNG calls on a pretend GPU host, recording what is restored."""

    def __init__(self, available: bool) -> None:
        self.available = available
        self.restored: list[torch.Tensor] = []
        self.devices: list[object] = []  # the device each call named

    def _get(self, device: object = "cuda") -> torch.Tensor:
        self.devices.append(device)
        return CUDA_STATE.clone()

    def _set(self, state: torch.Tensor, device: object = "cuda") -> None:
        self.devices.append(device)
        self.restored.append(state)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: self.available)
        monkeypatch.setattr(torch.cuda, "get_rng_state", self._get)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self._set)
        return self


GPU1 = torch.device("cuda", 1)


def test_a_gpu_run_saves_and_restores_its_cuda_rng(tmp_path, monkeypatch):
    cuda = FakeCuda(available=True).install(monkeypatch)
    generator = torch.Generator().manual_seed(3)
    path = checkpoint_path(tmp_path, "annealing")
    save_checkpoint(path, {"rng": rng_state(generator, GPU1)})
    saved = load_checkpoint(path)
    assert saved is not None and torch.equal(saved["rng"]["cuda"], CUDA_STATE)
    restore_rng(saved["rng"], torch.Generator(), GPU1)
    assert len(cuda.restored) == 1 and torch.equal(cuda.restored[0], CUDA_STATE)
    assert cuda.devices == [GPU1, GPU1]  # the job's card, never GPU 0 by default


def test_a_cpu_job_on_a_gpu_host_never_touches_cuda(monkeypatch):
    cuda = FakeCuda(available=True).install(monkeypatch)
    state = rng_state(torch.Generator(), torch.device("cpu"))
    restore_rng({**state, "cuda": CUDA_STATE.clone()}, torch.Generator(), torch.device("cpu"))
    assert "cuda" not in state and cuda.devices == []


def test_a_gpu_checkpoint_resumes_on_a_host_without_cuda(monkeypatch):
    cuda = FakeCuda(available=False).install(monkeypatch)
    generator = torch.Generator().manual_seed(3)
    state = {**rng_state(generator), "cuda": CUDA_STATE.clone()}  # written on a GPU host
    expected = torch.rand(3, generator=torch.Generator().manual_seed(3))
    restore_rng(state, generator := torch.Generator(), torch.device("cpu"))
    assert cuda.restored == []  # nothing to restore it into, and no error either
    assert torch.equal(torch.rand(3, generator=generator), expected)


def test_a_cpu_checkpoint_on_a_gpu_host_leaves_the_cuda_rng_alone(monkeypatch):
    FakeCuda(available=False).install(monkeypatch)
    state = rng_state(torch.Generator())  # written on a host without CUDA: no "cuda" entry
    assert "cuda" not in state
    cuda = FakeCuda(available=True).install(monkeypatch)
    restore_rng(state, torch.Generator(), GPU1)
    assert cuda.restored == []


def test_a_checkpoint_written_on_a_gpu_loads_on_a_cpu_host(tmp_path, monkeypatch):
    path = checkpoint_path(tmp_path, "kd")
    with monkeypatch.context() as m:  # torch.save records each tensor as living on cuda:0
        m.setattr(torch.serialization, "location_tag", lambda _storage: "cuda:0")
        save_checkpoint(path, {"model": {"w": torch.ones(2)}, "done": False})
    saved = load_checkpoint(path)
    assert saved is not None and saved["model"]["w"].device.type == "cpu"
    assert torch.equal(saved["model"]["w"], torch.ones(2))


class _Payload:
    """Unpickling this runs code: it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


def test_torchs_environment_override_cannot_make_the_loader_unpickle(tmp_path, monkeypatch):
    # An operator may have this set for another tool; it must not reach our loader.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path, marker = checkpoint_path(tmp_path, "kd"), tmp_path / "payload-ran"
    path.parent.mkdir(parents=True)
    torch.save({"done": True, "run_key": _Payload(marker)}, path)
    with pytest.raises(TrainingError):
        load_checkpoint(path)
    assert not marker.exists()


REFUSED = (
    "checkpoints/kd.pt is not a checkpoint this service wrote ({why}); it was not loaded. "
    "Delete it to start the arm afresh, or run the job in a new output folder"
)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"", "it is damaged or not a torch checkpoint"),
        (_Payload, "it holds objects other than tensors and plain containers"),
        (torch.zeros(2), "it holds a Tensor, not a checkpoint"),
    ],
)
def test_each_refusal_says_why_and_what_to_do(tmp_path, content, why):
    path = checkpoint_path(tmp_path, "kd")
    path.parent.mkdir(parents=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is _Payload:
        torch.save({"x": _Payload(tmp_path / "ran")}, path)
    else:
        torch.save(content, path)
    with pytest.raises(TrainingError) as err:
        load_checkpoint(path)
    assert err.value.message == REFUSED.format(why=why)
    assert err.value.field == "resume"
