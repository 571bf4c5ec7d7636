"""A throwaway PostgreSQL cluster for the tests: initdb + pg_ctl in a temp dir, unprivileged."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

# PostgreSQL refuses to run as root; CI runs as root, so the cluster runs as this user.
UNPRIVILEGED_USER = "nobody"
START_TIMEOUT_S = 60


class PostgresUnavailable(RuntimeError):
    """The cluster could not be started; the message says why (tests print it when skipping)."""


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    # Debian installs the server binaries outside PATH, one folder per major version.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise PostgresUnavailable(
        f"{name} not found on PATH or in /usr/lib/postgresql/*/bin "
        "(apt-get install postgresql; .ci/run does)"
    )


class PostgresCluster:
    """One cluster listening on a unix socket in its own folder; databases made per test."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="akd-pg-"))  # short: socket paths max ~100
        self.data = self.dir / "data"
        self._as: list[str] = []
        self._started = False

    def _run(self, *cmd: str) -> None:
        out = subprocess.run([*self._as, *cmd], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(cmd[:2])} failed: {out.stderr.strip()[-800:]}")

    def start(self) -> PostgresCluster:
        """initdb and start the server (as an unprivileged user when we are root)."""
        initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
        if os.geteuid() == 0:
            runner = shutil.which("runuser") or shutil.which("setpriv")
            if runner is None:
                raise PostgresUnavailable("running as root, and neither runuser nor setpriv exist")
            pw = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            if runner.endswith("runuser"):
                self._as = [runner, "-u", UNPRIVILEGED_USER, "--"]
            else:
                self._as = [runner, f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                            "--clear-groups", "--"]  # fmt: skip
        self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C")  # fmt: skip
        # No TCP at all: the socket in our own folder cannot clash with another cluster.
        opts = f"-c listen_addresses='' -c unix_socket_directories={self.dir} -c fsync=off"
        opts += " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        self._run(pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                  "-w", "-t", str(START_TIMEOUT_S), "start")  # fmt: skip
        self._started = True
        return self

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of a database in this cluster."""
        return f"postgresql+psycopg://postgres@/{database}?host={self.dir}"

    def create_database(self) -> str:
        """A fresh empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(host=str(self.dir), user="postgres", dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and remove its folder."""
        if self._started:
            with contextlib.suppress(Exception):
                self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)
