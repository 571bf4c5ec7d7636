""".ci/services: CI fails, naming the part, when redis-server or PostgreSQL cannot be installed;
without chromium it goes on and says that the browser test will skip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / ".ci" / "services"


def _exe(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _run(tmp_path: Path, apt_get: str, have: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run the script with a PATH holding only bash, a fake apt-get and the `have` programs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    bash = shutil.which("bash")
    assert bash is not None
    (bin_dir / "bash").symlink_to(bash)
    _exe(bin_dir / "apt-get", f'echo "$@" >> {tmp_path}/apt.log\n{apt_get}')
    for name in have:
        _exe(bin_dir / name, "exit 0\n")
    env = {"PATH": str(bin_dir), "PG_INITDB_GLOB": str(tmp_path / "none" / "*" / "initdb")}
    return subprocess.run([str(SCRIPT)], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip


def test_ci_fails_when_the_services_cannot_be_installed(tmp_path):
    out = _run(tmp_path, apt_get="exit 100\n")
    assert out.returncode != 0
    assert "could not install redis-server postgresql" in out.stderr


def test_ci_fails_when_apt_get_succeeds_without_installing_them(tmp_path):
    out = _run(tmp_path, apt_get="exit 0\n")
    assert out.returncode != 0
    assert "still not available" in out.stderr and "redis-server" in out.stderr


def test_ci_installs_what_is_missing(tmp_path):
    bin_dir = tmp_path / "bin"
    # The fake install puts both programs on PATH, as Debian's packages do.
    chmod = shutil.which("chmod")
    install = (
        f'case "$1" in install) for p in redis-server initdb chromium; do '
        f'printf "#!/bin/sh\\n" > {bin_dir}/$p; {chmod} +x {bin_dir}/$p; done;; esac\n'
    )
    out = _run(tmp_path, apt_get=install, have=("redis-server",))
    assert out.returncode == 0, out.stderr
    assert "install -y -qq postgresql" in (tmp_path / "apt.log").read_text()
    assert "services ready: redis-server, postgresql, chromium" in out.stderr


def test_ci_skips_apt_get_when_both_are_there(tmp_path):
    out = _run(tmp_path, apt_get="exit 100\n", have=("redis-server", "initdb", "chromium"))
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "apt.log").exists()


def test_ci_goes_on_without_chromium_saying_the_browser_test_will_skip(tmp_path):
    out = _run(tmp_path, apt_get="exit 100\n", have=("redis-server", "initdb"))
    assert out.returncode == 0, out.stderr
    assert "could not install chromium" in out.stderr and "browser test will skip" in out.stderr
    assert "services ready: redis-server, postgresql, no browser" in out.stderr
    assert "update -qq" in (tmp_path / "apt.log").read_text()  # it tried
