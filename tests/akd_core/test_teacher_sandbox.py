"""The sandboxed teacher process: same logits as in-process, and a hostile teacher is contained.

The containment tests switch the TorchScript allow-list off (a test-only policy field) or
replace the child's loader with plain Python, i.e. they assume the first layer was bypassed
and prove the second (uid, network namespace, environment, limits) still holds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from akd_core.errors import SpecError, TeacherLoadError
from akd_core.export import export_onnx
from akd_core.models import build_model, count_params
from akd_core.report import teacher_facts
from akd_core.sandbox import process, proxy
from akd_core.sandbox.proxy import SandboxedTeacher, SandboxPolicy
from akd_core.sandbox.rights import Limits
from akd_core.spec import TeacherSpec
from akd_core.teachers import load_teacher, load_teacher_in_process

CPU = torch.device("cpu")
SHAPE, CLASSES = (1, 8, 8), 3
# As if the allow-list had been bypassed; no warm spare for these one-off processes.
UNCHECKED = SandboxPolicy(check_torchscript=False, keep_warm=False)
ROOT_ONLY = "the sandbox drops to an unprivileged uid only when started as root"


def _spec(fmt: str, **kw: object) -> TeacherSpec:
    return TeacherSpec(source="file:teacher", format=fmt, **kw)  # type: ignore[arg-type]


def _pid(teacher: SandboxedTeacher) -> int:
    assert teacher._child is not None
    return teacher._child.proc.pid


def _uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return build_model("cnn-tiny", SHAPE, CLASSES).eval()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, model: nn.Module) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("teachers")
    torch.jit.save(torch.jit.script(model), str(d / "teacher.pt"))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "w.safetensors"))
    return {
        "onnx": export_onnx(model, SHAPE, d / "teacher.onnx", {}),
        "torchscript": d / "teacher.pt",
        "safetensors": d / "w.safetensors",
    }


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "safetensors"])
def test_every_format_runs_in_a_confined_process_with_in_process_results(
    files: dict[str, Path], model: nn.Module, fmt: str
) -> None:
    spec = _spec(fmt, arch="cnn-tiny" if fmt == "safetensors" else None)
    kw = {"input_shape": SHAPE, "num_classes": CLASSES}
    local = load_teacher_in_process(spec, files[fmt], CPU, **kw)  # type: ignore[arg-type]
    teacher = load_teacher(spec, files[fmt], CPU, **kw)  # type: ignore[arg-type]
    assert isinstance(teacher, SandboxedTeacher) and teacher.format == fmt
    x = torch.randn(7, *SHAPE, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(teacher.predict(x), local.predict(x), atol=1e-6, rtol=0)
    np.testing.assert_allclose(teacher.logits_for(x.numpy(), 3), local.logits_for(x.numpy(), 3))
    assert teacher.fingerprint == local.fingerprint
    assert teacher.declared_input == local.declared_input
    facts = teacher_facts(teacher, files[fmt])
    if fmt == "onnx":  # BatchNorm folded into the convolutions: the initializers' sizes
        inits = onnx.load(str(files[fmt])).graph.initializer
        expected = int(sum(np.prod(t.dims) for t in inits))
    else:
        expected = count_params(model)
    assert facts["params"] == expected == local.param_count
    pid = _pid(teacher)
    if os.geteuid() == 0:
        assert _uid_of(pid) == 65534 and teacher.sandbox_layers["user"] == "uid 65534 gid 65534"
    workdir = teacher._child.workdir  # type: ignore[union-attr]
    assert workdir.is_dir() and workdir != Path.cwd()
    teacher.release()
    assert not Path(f"/proc/{pid}").exists() and not workdir.exists()
    with pytest.raises(RuntimeError, match="released"):
        teacher.predict(x)


def test_a_refusal_in_the_child_keeps_its_class_and_field(files: dict[str, Path]) -> None:
    with pytest.raises(SpecError) as err:
        load_teacher(
            _spec("safetensors", arch="vgg"),
            files["safetensors"],
            CPU,
            input_shape=SHAPE,
            num_classes=CLASSES,
        )
    assert err.value.field == "teacher.arch" and "vgg" in err.value.message


class Trespasser(nn.Module):
    """One row: create a file via from_file(shared=True); two rows: read a file's bytes."""

    def __init__(self, write_to: str, read_from: str) -> None:
        super().__init__()
        self.write_to, self.read_from = write_to, read_from

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.size(0) == 1:
            return torch.from_file(self.write_to, shared=True, size=8) + x.sum()
        return torch.from_file(self.read_from, shared=False, size=6, dtype=torch.uint8).float()


@pytest.fixture
def private_dir(tmp_path: Path) -> Path:
    d = tmp_path / "private"
    d.mkdir(mode=0o700)
    secret = d.parent / "secret.txt"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    return d


def test_the_allow_list_refuses_in_the_child_too(tmp_path: Path, private_dir: Path) -> None:
    path = tmp_path / "t.pt"
    torch.jit.save(torch.jit.script(Trespasser(str(private_dir / "x"), "/etc/hostname")), str(path))
    with pytest.raises(TeacherLoadError, match=r"aten::from_file \(in forward\)"):
        load_teacher(_spec("torchscript"), path, CPU)


def test_a_torchscript_teacher_past_the_allow_list_cannot_touch_the_workers_files(
    tmp_path: Path, private_dir: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip(ROOT_ONLY + f"; these tests run as uid {os.geteuid()}")
    target, secret = private_dir / "pwned", private_dir.parent / "secret.txt"
    path = tmp_path / "t.pt"
    torch.jit.save(torch.jit.script(Trespasser(str(target), str(secret))), str(path))
    teacher = load_teacher(_spec("torchscript"), path, CPU, sandbox=UNCHECKED)
    try:
        with pytest.raises(TeacherLoadError, match="rejected input of shape.*ermission denied"):
            teacher.predict(torch.zeros(1, 2))
        assert not target.exists()
        with pytest.raises(TeacherLoadError, match="rejected input of shape.*ermission denied"):
            teacher.predict(torch.zeros(2, 2))
    finally:
        teacher.release()
    # The same module does both in this (root) process: the file checks above are real.
    torch.jit.load(str(path))(torch.zeros(1, 2))
    assert target.exists()


# Arbitrary Python in the child, as after a full bypass of the allow-list: the child's
# loader is replaced by code that tries everything and reports what worked.
HOSTILE = """
from akd_core.sandbox.rights import isolate_early
early = isolate_early()
import json, os, socket, time
import encodings.idna  # socket needs it for "127.0.0.1"; imported before the rights drop
import numpy as np
import onnx
import akd_core.sandbox.child as c

def attempt(fn):
    try:
        return "ok: " + str(fn())[:40]
    except Exception as exc:
        return type(exc).__name__

class Hostile:
    format, param_count, declared_input = "onnx", 1, None
    def logits_for(self, x, batch_size):
        if batch_size == 1:
            raise RuntimeError(json.dumps({
                "write": attempt(lambda: open(PRIVATE + "/pwned", "w").write("x")),
                "read": attempt(lambda: open(SECRET).read()),
                "connect": attempt(lambda: socket.create_connection(("127.0.0.1", PORT), 3)),
                "env": sorted(k for k in os.environ if k.startswith("AKD_")),
                "proc_env": attempt(lambda: b"AKD_" in open("/proc/self/environ", "rb").read()),
                "big": attempt(lambda: open("big", "wb").write(bytes(32 << 20))),
                "cwd": os.getcwd(), "uid": os.getuid()}))
        if batch_size == 2:
            os._exit(3)
        if batch_size == 3:
            time.sleep(3600)
        if batch_size == 7:
            np.empty(6 << 30, np.uint8)  # address space only: fails under a 4 GiB cap
        if batch_size == 5:
            return np.zeros((len(x), 7), np.float32)  # another class count than before
        if batch_size == 6:
            return np.zeros((len(x), 2, 2), np.float32)
        return np.zeros((len(x), 2), np.float32)

c._load = lambda cfg: Hostile()
c.main(early)
"""


def _hostile(monkeypatch: pytest.MonkeyPatch, private: Path, port: int) -> None:
    params = f"PRIVATE = {str(private)!r}; SECRET = {str(private.parent / 'secret.txt')!r}; PORT = {port}"
    boot = ";".join(process.BOOT.split(";")[:2])  # keep the sys.path line
    monkeypatch.setattr(process, "BOOT", boot + "\n" + params + "\n" + HOSTILE)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    yield sock
    sock.close()


def _start_hostile(files: dict[str, Path], policy: SandboxPolicy = UNCHECKED) -> SandboxedTeacher:
    # A real ONNX file passes the parent's format check; the hostile loader ignores it.
    teacher = load_teacher(_spec("onnx"), files["onnx"], CPU, sandbox=policy)
    assert isinstance(teacher, SandboxedTeacher)
    return teacher


def test_arbitrary_code_in_the_child_is_contained(
    monkeypatch: pytest.MonkeyPatch,
    files: dict[str, Path],
    private_dir: Path,
    listener: socket.socket,
) -> None:
    monkeypatch.setenv("AKD_API_KEY_PEPPER", "do-not-leak")
    monkeypatch.setenv("AKD_DATABASE_URL", "postgresql://akd:pw@db/akd")
    _hostile(monkeypatch, private_dir, listener.getsockname()[1])
    teacher = _start_hostile(files)
    try:
        with pytest.raises(TeacherLoadError, match="rejected input") as err:
            teacher.logits_for(np.zeros((1, 2), np.float32), batch_size=1)
        seen = json.loads(err.value.message.split("RuntimeError: ", 1)[1])
        # What holds without root: a clean environment and a working directory of its own.
        assert seen["env"] == [] and seen["proc_env"] in ("ok: False", "PermissionError")
        assert seen["big"] == "OSError"  # EFBIG: 32 MiB is past the 16 MiB file-size limit
        assert teacher._child is not None
        assert seen["cwd"] == os.path.realpath(teacher._child.workdir) != os.getcwd()
        layers = teacher.sandbox_layers
    finally:
        teacher.release()
    with pytest.raises(BlockingIOError):
        listener.accept()  # nothing ever connected
    reasons = []
    if os.geteuid() == 0:
        assert seen["uid"] == 65534
        assert seen["write"] == "PermissionError" and not (private_dir / "pwned").exists()
        assert seen["read"] == "PermissionError"
    else:
        reasons.append(f"{ROOT_ONLY}; running as uid {os.geteuid()}")
    if layers["network"].startswith("own"):
        assert seen["connect"] == "OSError", seen["connect"]  # ENETUNREACH: no interface up
    else:
        reasons.append(f"no network namespace here: {layers['network']}")
    if reasons:
        pytest.skip("; ".join(reasons))


def test_a_child_out_of_memory_or_dying_mid_run_gives_a_teacher_error(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, Path], private_dir: Path
) -> None:
    _hostile(monkeypatch, private_dir, 9)
    capped = Limits(memory_bytes=4 << 30)
    teacher = _start_hostile(
        files, SandboxPolicy(check_torchscript=False, keep_warm=False, limits=capped)
    )
    assert "as 4294967296" in teacher.sandbox_layers["limits"]
    np.testing.assert_array_equal(teacher.logits_for(np.zeros((4, 2), np.float32), 4), 0)
    with pytest.raises(TeacherLoadError, match="out of memory in the sandbox"):
        teacher.logits_for(np.zeros((1, 2), np.float32), batch_size=7)
    for bs, shape in ((5, r"\(1, 7\)"), (6, r"\(1, 2, 2\)")):
        with pytest.raises(TeacherLoadError, match=rf"returned shape {shape}.*expected \(1, 2\)"):
            teacher.logits_for(np.zeros((1, 2), np.float32), batch_size=bs)
    with pytest.raises(TeacherLoadError, match="exited with code 3 while computing logits"):
        teacher.logits_for(np.zeros((1, 2), np.float32), batch_size=2)
    with pytest.raises(TeacherLoadError, match="stopped earlier"):
        teacher.predict(torch.zeros(1, 2))


def test_a_hanging_child_is_killed_after_the_timeout(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, Path], private_dir: Path
) -> None:
    _hostile(monkeypatch, private_dir, 9)
    teacher = _start_hostile(
        files, SandboxPolicy(check_torchscript=False, keep_warm=False, call_timeout_s=1.0)
    )
    pid = _pid(teacher)
    started = time.monotonic()
    with pytest.raises(TeacherLoadError, match="did not answer within 1 s"):
        teacher.logits_for(np.zeros((1, 2), np.float32), batch_size=3)
    assert time.monotonic() - started < 15  # 1 s timeout, then a kill: never the 3600 s sleep
    assert not Path(f"/proc/{pid}").exists()


def test_a_killed_child_gives_a_teacher_error(files: dict[str, Path]) -> None:
    teacher = load_teacher(_spec("torchscript"), files["torchscript"], CPU)
    assert isinstance(teacher, SandboxedTeacher)
    assert teacher.predict(torch.zeros(2, *SHAPE)).shape == (2, CLASSES)
    os.kill(_pid(teacher), signal.SIGKILL)
    with pytest.raises(TeacherLoadError, match="killed by SIGKILL while computing logits"):
        teacher.predict(torch.zeros(2, *SHAPE))


class Chatty(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(3000):  # enough to flush any stdout buffer into the pipe
            print("teacher output follows, line", i)
        return x.flatten(1) * 2


def test_what_a_teacher_prints_cannot_corrupt_the_answers(tmp_path: Path) -> None:
    path = tmp_path / "chatty.pt"
    torch.jit.save(torch.jit.script(Chatty()), str(path))
    teacher = load_teacher(_spec("torchscript"), path, CPU, sandbox=UNCHECKED)
    try:
        x = torch.arange(8.0).reshape(2, 4)
        for _ in range(3):  # stdout is the stderr log: the protocol stays in step
            torch.testing.assert_close(teacher.predict(x), x * 2)
    finally:
        teacher.release()


def test_the_next_teacher_takes_the_process_started_ahead(files: dict[str, Path]) -> None:
    proxy.prestart()  # what a worker process can do when it starts (a torch spare by default)
    ahead = process._Spare.children.get("torch")
    first = load_teacher(_spec("torchscript"), files["torchscript"], CPU)
    assert ahead is not None and _pid(first) == ahead.proc.pid  # type: ignore[arg-type]
    spare = process._Spare.children.get("torch")
    assert spare is not None and spare.proc.poll() is None  # importing torch meanwhile
    second = load_teacher(_spec("torchscript"), files["torchscript"], CPU)
    try:
        assert isinstance(first, SandboxedTeacher) and isinstance(second, SandboxedTeacher)
        assert _pid(second) == spare.proc.pid != _pid(first)
        x = torch.zeros(2, *SHAPE)
        torch.testing.assert_close(second.predict(x), first.predict(x))
    finally:
        first.release()
        second.release()
    unused = SandboxPolicy(keep_warm=False)
    load_teacher(_spec("torchscript"), files["torchscript"], CPU, sandbox=unused).release()
    assert "torch" not in process._Spare.children  # keep_warm=False leaves no idle process


def test_an_unprivileged_worker_gets_a_user_and_network_namespace(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, Path]
) -> None:
    # The child believes it was started as uid 4242, so it takes the non-root path:
    # unshare(CLONE_NEWUSER | CLONE_NEWNET), which the kernel allows only while the process
    # has one thread, i.e. before torch is imported. uid 0 owns the files (no chown to nobody).
    monkeypatch.setattr(process, "BOOT", "import os; os.geteuid = lambda: 4242; " + process.BOOT)
    policy = SandboxPolicy(uid=0, gid=0, keep_warm=False)
    teacher = load_teacher(_spec("torchscript"), files["torchscript"], CPU, sandbox=policy)
    try:
        layers = teacher.sandbox_layers  # type: ignore[attr-defined]
        assert teacher.predict(torch.zeros(2, *SHAPE)).shape == (2, CLASSES)
    finally:
        teacher.release()
    assert layers["user"] == "unchanged (started as uid 4242, not root)"
    network = layers["network"]
    if network.startswith("not isolated") and "Invalid argument" not in network:
        pytest.skip(f"this kernel refuses unprivileged user namespaces: {network}")
    assert network == "own user and network namespace"


def test_stopping_a_child_removes_only_a_directory_the_sandbox_made(tmp_path: Path) -> None:
    import subprocess
    import tempfile

    keep = tmp_path / "not-ours"
    keep.mkdir()
    (keep / "data").write_text("stays")
    proc = subprocess.Popen(["sleep", "60"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    with tempfile.TemporaryFile() as log:
        process.Child(proc, keep, log, ()).stop()  # sleep ignores "bye": it is killed
    assert proc.returncode is not None and (keep / "data").read_text() == "stays"


def test_a_forgotten_teacher_still_ends_its_process(files: dict[str, Path]) -> None:
    import gc

    teacher = load_teacher(_spec("torchscript"), files["torchscript"], CPU)
    assert isinstance(teacher, SandboxedTeacher)
    pid, workdir = _pid(teacher), teacher._child.workdir  # type: ignore[union-attr]
    del teacher  # e.g. run_job returns without release() when augmentation kept it alive
    gc.collect()
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() and not workdir.exists()
