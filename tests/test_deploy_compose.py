"""The distributed deployment (deploy/): what the compose file promises, checked without an engine.

``docker compose config`` validates the file when a compose CLI is installed (the v2 plugin or
docker-compose v1); the gateway's routing is exercised with a real nginx against stand-in backends
when nginx is installed. Both skip, saying why, on a machine without them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

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
    assert compose["services"]["rabbitmq"]["image"] == "rabbitmq:3.13-management"
    assert compose["services"]["postgres"]["image"] == "postgres:16"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_each_service_is_its_own_image_and_process(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    assert service["build"]["dockerfile"] == f"deploy/docker/{name}.Dockerfile"
    # Relative paths in a compose file are relative to the file's folder: the context is the repository.
    assert (DEPLOY / service["build"]["context"]).resolve() == DEPLOY.parent
    dockerfile = (DEPLOY / "docker" / f"{name}.Dockerfile").read_text()
    assert "python:3.11-slim" in dockerfile
    assert f"pip install /src/libs /src/services/{name}" in dockerfile
    # Only the library and this one service go into the image (the viewer adds the pinned npm packages).
    copied = re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.MULTILINE)
    assert copied == ["libs", f"services/{name}"] if name != "viewer" else ["web/package.json", "libs", "services/viewer"]
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


def test_the_trainer_reserves_a_gpu(compose: dict[str, Any]) -> None:
    deploy = compose["services"]["trainer"]["deploy"]
    assert deploy["replicas"] >= 1
    devices = deploy["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_rabbitmq_lets_a_training_job_hold_its_message_for_hours(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["rabbitmq"]["volumes"]
    source, target = next(m.split(":")[:2] for m in mounts if "rabbitmq.conf" in m)
    assert target.startswith("/etc/rabbitmq/")
    conf = (DEPLOY / source).read_text()
    timeout_ms = int(re.search(r"^consumer_timeout\s*=\s*(\d+)", conf, flags=re.MULTILINE).group(1))
    assert timeout_ms >= 6 * 3600 * 1000


def test_the_gateway_is_the_public_entry(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    assert gateway["image"] == "nginx:alpine"
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _backend(name: str) -> ThreadingHTTPServer:
    """Answers every request with its own name, the method and the path it received."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            body = f"{name} {self.command} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if nginx is None:
        pytest.skip("nginx is not installed here")
    tmp = tmp_path_factory.mktemp("gateway")
    backends = {name: _backend(name) for name in HTTP_SERVICES}
    port = _free_port()
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    # Same routes, local addresses: the backends by IP (no Docker DNS here), files under tmp.
    conf = re.sub(r"^\s*resolver .*$", "", conf, flags=re.MULTILINE)
    for name, server in backends.items():
        conf = conf.replace(f"{name}:8000", f"127.0.0.1:{server.server_address[1]}")
    conf = conf.replace("listen 8000;", f"listen 127.0.0.1:{port};").replace(
        "worker_processes auto;", "worker_processes 1;"
    )
    temp_paths = "".join(
        f"{kind}_temp_path {tmp}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = conf.replace("http {", "http {\n" + temp_paths, 1)
    (tmp / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", f"daemon off; pid {tmp}/nginx.pid;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"nginx did not start: {proc.stderr.read().decode()}")
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    for server in backends.values():
        server.shutdown()


@pytest.mark.parametrize(
    ("method", "path", "backend"),
    [
        ("POST", "/recon/jobs", "ingest"),
        ("GET", "/recon/jobs", "status"),
        ("GET", "/recon/jobs?limit=5", "status"),
        ("POST", "/recon/uploads", "ingest"),
        ("POST", "/recon/jobs/0b7c/submit", "ingest"),
        ("PUT", "/store/upload/jobs/0b7c/incoming/0001.jpg?expires=1&signature=x", "ingest"),
        ("GET", "/recon/jobs/0b7c", "status"),
        ("POST", "/recon/jobs/0b7c/cancel", "status"),
        ("DELETE", "/recon/jobs/0b7c", "status"),
        ("GET", "/admin", "status"),
        ("GET", "/admin/jobs", "status"),
        ("GET", "/v/some-public-key", "viewer"),
        ("GET", "/recon/pub/some-public-key/scene.splat", "viewer"),
        ("GET", "/", "viewer"),
    ],
)
def test_the_gateway_routes_each_path_to_its_service(gateway: str, method: str, path: str, backend: str) -> None:
    response = httpx.request(method, gateway + path, content=b"x" if method in ("POST", "PUT") else None)
    assert response.status_code == 200
    assert response.text == f"{backend} {method} {path}"
