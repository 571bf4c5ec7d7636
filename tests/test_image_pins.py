"""docker/Dockerfile's torch and onnxruntime pins agree with the project's (a static check:
resolving them needs the network; docker/Dockerfile's header has the manual check)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "docker" / "Dockerfile").read_text()
# The wheel indexes torch 2.13 is published on (download.pytorch.org/whl/<variant>).
TORCH_213_VARIANTS = {"cpu", "cu126", "cu130", "cu132"}


def _arg(name: str) -> str:
    found = re.search(rf"^ARG {name}=(\S+)$", DOCKERFILE, re.M)
    assert found, f"docker/Dockerfile has no default for ARG {name}"
    return found.group(1)


def _dependency(name: str) -> Requirement:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(r for r in map(Requirement, deps) if r.name == name)


def test_the_image_installs_the_torch_the_project_is_developed_with():
    version = _arg("TORCH_VERSION")
    make_pin = re.search(r"pip install -q torch==(\S+)", (ROOT / "Makefile").read_text())
    assert make_pin and make_pin.group(1) == version  # `make setup` and the image agree
    assert _dependency("torch").specifier.contains(version)
    assert 'pip install "torch==${TORCH_VERSION}" --index-url' in DOCKERFILE


def test_every_torch_variant_named_is_an_index_that_carries_that_torch():
    assert _arg("TORCH_VERSION") == "2.13.0", "update TORCH_213_VARIANTS for a new torch"
    assert _arg("TORCH_VARIANT") in TORCH_213_VARIANTS
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for service in compose["services"].values():
        variant = service.get("build", {}).get("args", {}).get("TORCH_VARIANT")
        if variant is not None:
            default = re.fullmatch(r"\$\{TORCH_VARIANT:-(\w+)\}", variant)
            assert default and default.group(1) in TORCH_213_VARIANTS - {"cpu"}


def test_cpu_and_gpu_images_install_one_onnxruntime_version_the_project_accepts():
    version = _arg("ORT_VERSION")
    assert _dependency("onnxruntime").specifier.contains(version)
    assert '"onnxruntime==${ORT_VERSION}"' in DOCKERFILE
    # The GPU runtime replaces the CPU one (same module), at the same version.
    swap = re.search(r"pip uninstall -y onnxruntime && pip install \"onnxruntime-gpu==(\S+)\"",
                     DOCKERFILE)  # fmt: skip
    assert swap and swap.group(1) == "${ORT_VERSION}"
