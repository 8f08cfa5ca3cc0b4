"""deploy/compose.gpu.yaml: on a GPU host, one CUDA trainer per GPU, each held to its own device, with
the same settings as compose.yaml's trainer, and the colmap service on pycolmap's CUDA build. Read from the file, and merged by the compose CLI where
one is installed (as scripts/test installs docker-compose)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
COMPOSE, GPU = DEPLOY / "compose.yaml", DEPLOY / "compose.gpu.yaml"
SECRETS = {
    "PHOTOSPLAT_ADMIN_TOKEN": "admin-token",
    "POSTGRES_PASSWORD": "pg-secret",
    "RABBITMQ_PASSWORD": "mq-secret",
    "MINIO_ROOT_PASSWORD": "store-secret",
}


def _gpu_of(service: dict[str, Any]) -> list[str]:
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and "count" not in device
    return device["device_ids"]


def test_each_trainer_holds_its_own_gpu() -> None:
    services = yaml.safe_load(GPU.read_text())["services"]
    trainers = {name: s for name, s in services.items() if name.startswith("trainer")}
    assert set(services) == {*trainers, "colmap"} and len(trainers) >= 2
    devices = {name: _gpu_of(s) for name, s in trainers.items()}
    assert devices["trainer"] == ["0"]
    for name, ids in devices.items():
        if name != "trainer":
            assert ids == [re.fullmatch(r"trainer-gpu(\d+)", name).group(1)], name
    assert len({tuple(ids) for ids in devices.values()}) == len(devices)
    for service in trainers.values():
        assert service["build"]["dockerfile"] == "deploy/docker/trainer-cuda.Dockerfile"
        assert service["environment"]["PHOTOSPLAT_TRAINER_DEVICE"] == "cuda"
        assert service["healthcheck"]["test"] == ["CMD", "photosplat-worker-alive", "trainer"]


def test_colmap_runs_on_the_cuda_build_beside_the_first_trainer() -> None:
    colmap = yaml.safe_load(GPU.read_text())["services"]["colmap"]
    assert colmap["build"]["dockerfile"] == "deploy/docker/colmap-cuda.Dockerfile"
    assert _gpu_of(colmap) == ["0"]


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_the_compose_cli_merges_the_override_into_gpu_trainers(tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI here (neither the `docker compose` plugin nor docker-compose)")
    empty = tmp_path / "empty.env"
    empty.write_text("")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **SECRETS}

    def config(*files: Path) -> dict[str, Any]:
        args = [arg for f in files for arg in ("-f", str(f))]
        out = subprocess.run(
            [*cli, "--env-file", str(empty), *args, "config"], capture_output=True, text=True, env=env, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return yaml.safe_load(out.stdout)["services"]

    cpu, gpu = config(COMPOSE), config(COMPOSE, GPU)
    assert set(gpu) - set(cpu) == {"trainer-gpu1"}
    for name in ("trainer", "trainer-gpu1"):
        trainer = gpu[name]
        # The CPU trainer's settings, plus the CUDA device.
        assert trainer["environment"] == {**cpu["trainer"]["environment"], "PHOTOSPLAT_TRAINER_DEVICE": "cuda"}
        assert trainer["depends_on"] == cpu["trainer"]["depends_on"]
        assert trainer["shm_size"] == cpu["trainer"]["shm_size"]
        assert trainer["build"]["dockerfile"] == "deploy/docker/trainer-cuda.Dockerfile"
    assert [_gpu_of(gpu[n]) for n in ("trainer", "trainer-gpu1")] == [["0"], ["1"]]
    # colmap keeps every setting of the CPU file; only its image and the GPU change.
    for key in ("environment", "depends_on", "healthcheck"):
        assert gpu["colmap"][key] == cpu["colmap"][key], key
    assert gpu["colmap"]["build"]["dockerfile"] == "deploy/docker/colmap-cuda.Dockerfile"
    assert _gpu_of(gpu["colmap"]) == ["0"]
