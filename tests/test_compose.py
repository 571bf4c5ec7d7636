"""docker-compose.yml cannot run here (no Docker engine): check its structure and commands."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PROJECT_SERVICES = [name for name, svc in SERVICES.items() if "build" in svc]


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    return dict(v.split(":")[:2][::-1] for v in service.get("volumes", []))  # path -> volume


def test_the_production_services_are_all_there():
    assert {"api", "worker-gpu0", "worker-gpu1", "redis", "postgres"} <= set(SERVICES)
    assert {"api", "worker-gpu0"} <= set(PROJECT_SERVICES)


GPU_WORKERS = [name for name in SERVICES if name.startswith("worker-gpu")]


def test_each_gpu_worker_holds_its_own_card_and_runs_one_job():
    cards = []
    for name in GPU_WORKERS:
        (device,) = SERVICES[name]["deploy"]["resources"]["reservations"]["devices"]
        # `count` would hand every worker the same first card; device_ids isolates them.
        assert "gpu" in device["capabilities"] and "count" not in device
        cards.append(tuple(device["device_ids"]))
        cmd = SERVICES[name]["command"]
        assert cmd[cmd.index("--concurrency") + 1] == "1"
    assert sorted(cards) == [(str(i),) for i in range(len(GPU_WORKERS))]
    assert len(GPU_WORKERS) >= 2


def test_redis_never_evicts_and_persists_messages():
    cmd = " ".join(SERVICES["redis"]["command"])
    assert "--maxmemory-policy noeviction" in cmd
    assert "--appendonly yes" in cmd
    assert "/data" in _mounts(SERVICES["redis"])


def test_api_and_workers_share_the_data_volume_and_settings():
    volumes = {_mounts(SERVICES[name]).get("/data") for name in PROJECT_SERVICES}
    assert len(volumes) == 1 and None not in volumes
    assert volumes.pop() in COMPOSE["volumes"]
    for name in PROJECT_SERVICES:
        env = SERVICES[name]["environment"]
        assert env["AKD_DATA_DIR"] == "/data"
        assert env["AKD_BROKER_URL"].startswith("redis://redis:")
        assert env["AKD_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["AKD_REQUIRE_KEYS"] == "true"  # the API binds 0.0.0.0: keys are mandatory


def test_the_image_installs_the_postgres_driver_and_builds_from_the_dockerfile():
    for name in PROJECT_SERVICES:
        build = SERVICES[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"pip install \"\.\[postgres\]\"", dockerfile)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'postgres = \["psycopg\[binary\]', pyproject)
    assert "TORCH_VARIANT" in dockerfile


def test_every_akd_service_runs_as_the_images_unprivileged_user():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    uid = re.search(r"useradd [^\n]*--uid (\d+) --gid akd [^\n]* akd\b", dockerfile)
    gid = re.search(r"groupadd [^\n]*--gid (\d+) akd\b", dockerfile)
    assert uid and gid and re.search(r"^USER akd$", dockerfile, re.M)
    assert {"api", "worker-gpu0", "reaper"} <= set(PROJECT_SERVICES)
    for name in PROJECT_SERVICES:
        user = str(SERVICES[name].get("user", ""))
        assert user == f"{uid.group(1)}:{gid.group(1)}", f"{name} runs as {user or 'the default'}"
        assert not user.startswith("0") and user != "root"


def _check_command(cmd: list[str]) -> None:
    """Fail unless the command names something this project provides."""
    prog, args = cmd[0], cmd[1:]
    if prog == "uvicorn":
        target = next(a for a in args if ":" in a and not a.startswith("-"))
        module, attr = target.split(":")
        assert callable(getattr(importlib.import_module(module), attr))
        assert "--factory" in args
    elif prog == "celery":
        module = args[args.index("-A") + 1]
        from celery import Celery

        assert isinstance(importlib.import_module(module).celery_app, Celery)
        assert args[args.index("-A") + 2] == "worker"
    elif prog == "python":
        assert args[0] == "-m"
        assert callable(importlib.import_module(args[1]).main)
    elif prog == "akd":
        from akd_tools.cli import build_parser

        build_parser().parse_args(args)  # exits (SystemExit) on an unknown subcommand
    else:
        pytest.fail(f"unknown program in a service command: {cmd}")


@pytest.mark.parametrize("name", PROJECT_SERVICES)
def test_every_service_command_exists_in_the_project(name):
    cmd = SERVICES[name]["command"]
    assert isinstance(cmd, list), "exec form: signals reach the process, not a shell"
    _check_command(cmd)
