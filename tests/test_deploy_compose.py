"""The distributed deployment (deploy/): what the compose file promises, checked without an engine.

``docker compose config`` validates the file when a compose CLI is installed (the v2 plugin or
docker-compose v1); the gateway's routing is exercised with a real nginx against stand-in backends
when nginx is installed. Both skip, saying why, on a machine without them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from photosplat_testkit.gateway import ROUTES, free_port, nginx_binary, running_nginx, stand_in_backends

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
APP_SERVICES = ("ingest", "status", "viewer", "colmap", "trainer")
HTTP_SERVICES = ("ingest", "status", "viewer")
SECRETS = {
    "PHOTOSPLAT_ADMIN_TOKEN": "admin-token",
    "POSTGRES_PASSWORD": "pg-secret",
    "RABBITMQ_PASSWORD": "mq-secret",
    "MINIO_ROOT_PASSWORD": "store-secret",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def test_every_service_and_the_infrastructure_is_there(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {*APP_SERVICES, "rabbitmq", "postgres", "minio", "bucket", "gateway"}
    assert compose["services"]["rabbitmq"]["image"].startswith("rabbitmq:3.13.")
    assert compose["services"]["postgres"]["image"].startswith("postgres:16.")


def test_every_image_is_pinned_by_tag_and_digest(compose: dict[str, Any]) -> None:
    images = {name: s["image"] for name, s in compose["services"].items() if "image" in s}
    assert set(images) == {"rabbitmq", "postgres", "minio", "bucket", "gateway"}
    for name, image in images.items():
        assert re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image), name
        assert ":latest" not in image


def test_every_long_running_service_has_a_real_health_check(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name == "bucket":
            assert service["restart"] == "no"  # a one-shot: it exits 0, nothing to check
            continue
        assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
    for name in ("colmap", "trainer"):
        # The workers serve no HTTP: the check their image installs (tests/test_deploy_worker_probe.py).
        assert compose["services"][name]["healthcheck"]["test"] == ["CMD", "photosplat-worker-alive", name]
        dockerfile = (DEPLOY / "docker" / f"{name}.Dockerfile").read_text()
        assert "COPY deploy/docker/worker-alive.py /usr/local/bin/photosplat-worker-alive" in dockerfile


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_service_is_its_own_image_and_process(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["build"]["dockerfile"] == f"deploy/docker/{name}.Dockerfile"
    # Relative paths in a compose file are relative to the file's folder: the context is the repository.
    assert (DEPLOY / service["build"]["context"]).resolve() == DEPLOY.parent
    dockerfile = (DEPLOY / "docker" / f"{name}.Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim-bookworm@sha256:[0-9a-f]{64}$", dockerfile, re.MULTILINE)
    assert f"pip install -c /src/requirements.lock /src/libs /src/services/{name}" in dockerfile
    # Only the lock, the library and this one service go into the image (the viewer adds the pinned
    # npm packages, the workers their health check).
    copied = re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.MULTILINE)
    expected = {"viewer": ["web/package.json"], "colmap": [], "trainer": []}.get(name, [])
    expected += ["requirements.lock", "libs", f"services/{name}"]
    expected += ["deploy/docker/worker-alive.py"] if name in ("colmap", "trainer") else []
    assert copied == expected
    assert f'CMD ["python", "-m", "photosplat_{name}"]' in dockerfile
    assert service["restart"] == "unless-stopped"

    env = service["environment"]
    prefix = f"PHOTOSPLAT_{name.upper()}_"
    assert env[prefix + "BUS_URL"].startswith("amqp://photosplat:${RABBITMQ_PASSWORD:?")
    assert env[prefix + "DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert env[prefix + "STORE_URL"].startswith("s3://")
    assert service["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert service["depends_on"]["bucket"]["condition"] == "service_completed_successfully"
    if name in HTTP_SERVICES:
        assert env[prefix + "PORT"] == "8000" and env[prefix + "HOST"] == "0.0.0.0"
        assert "/healthz" in " ".join(service["healthcheck"]["test"])


def test_the_admin_token_is_required(compose: dict[str, Any]) -> None:
    token = compose["services"]["status"]["environment"]["PHOTOSPLAT_STATUS_ADMIN_TOKEN"]
    assert token.startswith("${PHOTOSPLAT_ADMIN_TOKEN:?")


def test_the_trainer_runs_on_any_host(compose: dict[str, Any]) -> None:
    # The CPU image and no GPU reservation: GPU hosts add compose.gpu.yaml (test_deploy_compose_gpu.py).
    trainer = compose["services"]["trainer"]
    assert "deploy" not in trainer
    assert trainer["build"]["dockerfile"] == "deploy/docker/trainer.Dockerfile"


def test_rabbitmq_lets_a_training_job_hold_its_message_for_hours(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["rabbitmq"]["volumes"]
    source, target = next(m.split(":")[:2] for m in mounts if "rabbitmq.conf" in m)
    assert target.startswith("/etc/rabbitmq/")
    conf = (DEPLOY / source).read_text()
    timeout_ms = int(re.search(r"^consumer_timeout\s*=\s*(\d+)", conf, flags=re.MULTILINE).group(1))
    assert timeout_ms >= 6 * 3600 * 1000


def test_the_gateway_is_the_public_entry(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["image"].startswith("nginx:1.28.")
    assert "./nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in gateway["volumes"]
    assert gateway["ports"] == ["${PHOTOSPLAT_PORT:-8000}:8000"]
    assert {n: d["condition"] for n, d in gateway["depends_on"].items()} == {
        n: "service_healthy" for n in HTTP_SERVICES
    }


def _compose_cli() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _compose_config(cli: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # An empty env file: a developer's deploy/.env must not change what is checked.
    empty = tmp_path / "empty.env"
    empty.write_text("")
    clean = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(tmp_path)), **env}
    return subprocess.run(
        [*cli, "--env-file", str(empty), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        env=clean,
        timeout=60,
    )


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI here (neither the `docker compose` plugin nor docker-compose)")
    result = _compose_config(cli, SECRETS, tmp_path)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_the_admin_token(tmp_path: Path) -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no compose CLI here (neither the `docker compose` plugin nor docker-compose)")
    secrets = {k: v for k, v in SECRETS.items() if k != "PHOTOSPLAT_ADMIN_TOKEN"}
    result = _compose_config(cli, secrets, tmp_path)
    assert result.returncode != 0
    assert "PHOTOSPLAT_ADMIN_TOKEN" in result.stderr


# --- the gateway's routes, on a real nginx -------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed here")
    port = free_port()
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    # Same routes, local addresses: the backends by IP (no Docker DNS here).
    conf = re.sub(r"^\s*resolver .*$", "", conf, flags=re.MULTILINE)
    conf = conf.replace("listen 8000;", f"listen 127.0.0.1:{port};")
    with stand_in_backends() as ports:
        for name, backend_port in ports.items():
            conf = conf.replace(f"{name}:8000", f"127.0.0.1:{backend_port}")
        with running_nginx(nginx, conf, port, tmp_path_factory.mktemp("gateway")) as url:
            yield url


@pytest.mark.parametrize(("method", "path", "backend"), ROUTES)
def test_the_gateway_routes_each_path_to_its_service(gateway: str, method: str, path: str, backend: str) -> None:
    response = httpx.request(method, gateway + path, content=b"x" if method in ("POST", "PUT") else None)
    assert response.status_code == 200
    assert response.text == f"{backend} {method} {path}"


def test_the_gateway_keeps_the_services_metrics_inside(gateway: str) -> None:
    # /metrics would otherwise fall through to the viewer's catch-all route.
    response = httpx.get(gateway + "/metrics")
    assert response.status_code == 404 and "viewer" not in response.text


def test_the_workers_serve_their_metrics_port_on_the_network(compose: dict[str, Any]) -> None:
    # deploy/prometheus/prometheus.yaml scrapes name:9100; the health check asks /healthz there.
    for name in ("colmap", "trainer"):
        env = compose["services"][name]["environment"]
        prefix = f"PHOTOSPLAT_{name.upper()}_"
        assert (env[prefix + "HOST"], env[prefix + "METRICS_PORT"]) == ("0.0.0.0", "9100")
