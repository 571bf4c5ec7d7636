"""Working folders left by a parent that died (os._exit, SIGKILL) are swept; nobody else's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from akd_core.sandbox import process


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_folders_of_dead_parents_on_this_host_are_swept(tmp_path: Path) -> None:
    host = process._host()
    dead = tmp_path / f"akd-teacher-{host}-{_dead_pid()}-abc123"
    mine = tmp_path / f"akd-teacher-{host}-{os.getpid()}-def456"
    other_host = tmp_path / f"akd-teacher-{host}x-{_dead_pid()}-ghi789"
    unrelated = tmp_path / "akd-teacher-notours"
    for d in (dead, mine, other_host, unrelated):
        (d / ".cache").mkdir(parents=True)
    assert process.sweep_orphans(tmp_path) == [dead]
    assert not dead.exists()
    assert mine.exists() and other_host.exists() and unrelated.exists()


def test_a_parent_that_exits_without_cleanup_leaves_nothing_after_the_next_start(
    tmp_path: Path,
) -> None:
    # A parent that keeps a warm spare and ends with os._exit (as a Celery prefork child does)
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(process.ROOT)!r})
        from pathlib import Path
        from akd_core.sandbox import process
        child = process.spawn(Path({str(tmp_path)!r}), os.getuid(), os.getgid())
        print(child.workdir, flush=True)
        os._exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    left = Path(out.stdout.strip())
    assert left.exists() and left.parent == tmp_path
    assert process._OWNED.match(left.name), left.name  # the name the sweep recognises
    child = process.spawn(tmp_path, os.getuid(), os.getgid())
    try:
        assert not left.exists()
        assert [p.name for p in tmp_path.iterdir()] == [child.workdir.name]
    finally:
        child.stop()
    assert list(tmp_path.iterdir()) == []
