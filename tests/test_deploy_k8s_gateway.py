"""The public entry of the Kubernetes deployment: the Ingress hands every request to the gateway, whose
routes are compose's (deploy/nginx/nginx.conf), location by location, and are exercised on a real
nginx against stand-in backends when nginx is installed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from photosplat_testkit.gateway import (
    ROUTES,
    free_port,
    nginx_binary,
    routing_table,
    running_nginx,
    stand_in_backends,
)
from photosplat_testkit.kustomize import Manifest, render

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
K8S_GATEWAY = DEPLOY / "k8s" / "base" / "gateway-nginx.conf"
COMPOSE_GATEWAY = DEPLOY / "nginx" / "nginx.conf"


@pytest.fixture(scope="module", params=("dev", "prod"))
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(DEPLOY / "k8s" / "overlays" / request.param)


def _named(objects: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_the_gateway_routes_every_location_as_composes_does() -> None:
    compose = routing_table(COMPOSE_GATEWAY.read_text())
    assert "= /recon/jobs" in compose and len(compose) >= 9
    assert routing_table(K8S_GATEWAY.read_text()) == compose


def test_the_ingress_hands_everything_to_the_gateway(rendered: list[Manifest]) -> None:
    (ingress,) = _named(rendered, "Ingress").values()
    gateway_service = _named(rendered, "Service")["gateway"]
    backends = [p["backend"]["service"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]
                if p["path"] == "/" and p["pathType"] == "Prefix"]  # fmt: skip
    assert {"name": "gateway", "port": {"name": "http"}} in backends
    assert "http" in {p["name"] for p in gateway_service["spec"]["ports"]}
    # The controller must let an upload through that the gateway itself accepts.
    limit = re.search(r"client_max_body_size (\d+)m;", K8S_GATEWAY.read_text()).group(1)
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == f"{limit}m"
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"


def test_the_gateway_pod_runs_the_kept_configuration(rendered: list[Manifest]) -> None:
    config = _named(rendered, "ConfigMap")["photosplat-gateway"]
    assert config["data"]["nginx.conf"] == K8S_GATEWAY.read_text()
    pod = _named(rendered, "Deployment")["gateway"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert (mount["mountPath"], mount["subPath"]) == ("/etc/nginx/nginx.conf", "nginx.conf")
    listen = int(re.search(r"listen (\d+);", K8S_GATEWAY.read_text()).group(1))
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": listen}
    # An unprivileged user can bind no port under 1024.
    assert pod["securityContext"]["runAsNonRoot"] and listen >= 1024


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed here")
    port = free_port()
    conf = K8S_GATEWAY.read_text().replace("listen 8080;", f"listen 127.0.0.1:{port};")
    with stand_in_backends() as ports:
        for name, backend_port in ports.items():
            conf = conf.replace(f"server {name}:8000;", f"server 127.0.0.1:{backend_port};")
        with running_nginx(nginx, conf, port, tmp_path_factory.mktemp("k8s-gateway")) as url:
            yield url


@pytest.mark.parametrize(("method", "path", "backend"), ROUTES)
def test_the_gateway_routes_each_path_to_its_service(gateway: str, method: str, path: str, backend: str) -> None:
    response = httpx.request(method, gateway + path, content=b"x" if method in ("POST", "PUT") else None)
    assert response.status_code == 200
    assert response.text == f"{backend} {method} {path}"


def test_the_gateway_keeps_the_services_metrics_inside(gateway: str) -> None:
    response = httpx.get(gateway + "/metrics")
    assert response.status_code == 404 and "viewer" not in response.text
