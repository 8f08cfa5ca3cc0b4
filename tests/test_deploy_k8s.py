"""deploy/k8s: both overlays rendered (the test kit's kustomize renderer, compared with
``kubectl kustomize`` where kubectl is installed), every object validated against Kubernetes' schemas
(kubernetes-validate) and KEDA's against the schemas kept in deploy/k8s/schemas, then the promises
the manifests make: probes, resources, GPUs, references that resolve, pinned images.

Nothing here needs a cluster; what a cluster would add (admission, scheduling, KEDA at work) is not
checked (deploy/README.md says what was run)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from photosplat_libs.observability.probes import PATHS as PROBE_PATHS
from photosplat_libs.runner import build_app
from photosplat_testkit.kustomize import Manifest, render, split_image

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
KUBERNETES_VERSION = "1.32.0"
SERVICES = ("ingest", "status", "viewer", "colmap", "trainer")
HTTP_SERVICES = ("ingest", "status", "viewer")
WORKERS = ("colmap", "trainer")
KEDA_KINDS = ("ScaledObject", "TriggerAuthentication")
INFRASTRUCTURE = ("rabbitmq", "postgres", "minio")
OWN_IMAGES = {"ingest", "status", "viewer", "colmap", "trainer-cuda"}
SCHEMAS = K8S / "schemas"


def keda_schema(kind: str) -> jsonschema.protocols.Validator:
    schema = json.loads((SCHEMAS / f"keda-{kind.lower()}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def rendered(overlay: str) -> list[Manifest]:
    return render(K8S / "overlays" / overlay)


def of_kind(objects: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def containers(obj: Manifest) -> list[dict[str, Any]]:
    return obj["spec"]["template"]["spec"]["containers"]


def _comparable(obj: Manifest) -> Manifest:
    # kubectl writes a Secret's base64 folded at 76 columns; the values are what count.
    if obj["kind"] == "Secret":
        obj = {**obj, "data": {k: base64.b64decode(v) for k, v in obj["data"].items()}}
    return obj


def test_kubectl_kustomize_renders_the_same(overlay: str, rendered: list[Manifest]) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed here: the test kit's renderer alone is used")
    out = subprocess.run(
        ["kubectl", "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True, check=True
    ).stdout

    def keyed(objects: list[Manifest]) -> dict[tuple[str, str], Manifest]:
        return {(o["kind"], o["metadata"]["name"]): _comparable(o) for o in objects}

    assert keyed([d for d in yaml.safe_load_all(out) if d]) == keyed(rendered)


def test_every_object_is_valid_kubernetes(rendered: list[Manifest]) -> None:
    for obj in rendered:
        if obj["kind"] in KEDA_KINDS:
            continue  # a custom resource: checked against its own schema below
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_keda_objects_match_the_kept_schemas(rendered: list[Manifest]) -> None:
    keda = [o for o in rendered if o["kind"] in KEDA_KINDS]
    assert {o["kind"] for o in keda} == set(KEDA_KINDS)
    for obj in keda:
        keda_schema(obj["kind"]).validate(obj)


def test_every_service_has_probes_and_resources(rendered: list[Manifest]) -> None:
    workloads = {**of_kind(rendered, "Deployment"), **of_kind(rendered, "StatefulSet")}
    assert set(SERVICES) <= set(workloads)
    for name, workload in workloads.items():
        for container in containers(workload):
            assert {"readinessProbe", "livenessProbe"} <= set(container), name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert {"cpu", "memory"} <= set(resources["limits"]), name


def test_web_services_probe_the_health_route_their_process_serves(rendered: list[Manifest]) -> None:
    served = {route.path for route in build_app([], None).routes}  # what every HTTP service's process serves
    deployments = of_kind(rendered, "Deployment")
    for name in HTTP_SERVICES:
        (container,) = containers(deployments[name])
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8000}
        for probe in ("startupProbe", "readinessProbe"):
            assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
            assert container[probe]["httpGet"]["path"] in served
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == ("8000", "/metrics")
        assert "/metrics" in served
    # The viewer's /healthz reads the database: a database outage must not restart its pods.
    assert containers(deployments["viewer"])[0]["livenessProbe"] == {
        "tcpSocket": {"port": "http"}, "periodSeconds": 20, "timeoutSeconds": 5, "failureThreshold": 3
    }  # fmt: skip


def test_workers_probe_the_endpoints_of_their_metrics_port(rendered: list[Manifest]) -> None:
    deployments = of_kind(rendered, "Deployment")
    for name in WORKERS:
        (container,) = containers(deployments[name])
        env = {e["name"]: e for e in container["env"]}
        prefix = f"PHOTOSPLAT_{name.upper()}_"
        # The port the worker opens (runner.serve's ProbeServer), on every address of the pod.
        port = int(env[prefix + "METRICS_PORT"]["value"])
        assert env[prefix + "HOST"]["value"] == "0.0.0.0"
        assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": port}
        probes = {probe: container[probe]["httpGet"] for probe in ("startupProbe", "readinessProbe", "livenessProbe")}
        assert {p["port"] for p in probes.values()} == {"metrics"}
        assert {p["path"] for p in probes.values()} <= set(PROBE_PATHS)
        # Live while the event loop turns; ready (and started) once consuming.
        assert probes["livenessProbe"]["path"] == "/healthz"
        assert probes["readinessProbe"]["path"] == probes["startupProbe"]["path"] == "/readyz"
        annotations = deployments[name]["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(port) and annotations["prometheus.io/path"] in PROBE_PATHS
        # The worker works in its scratch folder on the mounted volume.
        assert env[f"PHOTOSPLAT_{name.upper()}_WORK_DIR"]["value"] == "/scratch"
        assert "/scratch" in {m["mountPath"] for m in container["volumeMounts"]}
        assert not any("DATABASE" in e for e in env)  # workers use no database
    # The images keep compose's health check (tests/test_deploy_worker_probe.py).
    images = {"colmap": "colmap.Dockerfile", "trainer": "trainer-cuda.Dockerfile"}
    for dockerfile in images.values():
        text = (K8S.parent / "docker" / dockerfile).read_text()
        assert "COPY deploy/docker/worker-alive.py /usr/local/bin/photosplat-worker-alive" in text


def test_the_trainer_runs_on_a_gpu_node_with_the_cuda_image(rendered: list[Manifest]) -> None:
    trainer = of_kind(rendered, "Deployment")["trainer"]
    pod = trainer["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert split_image(container["image"])[0].endswith("photosplat/trainer-cuda")
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PHOTOSPLAT_TRAINER_DEVICE"] == "cuda"
    # No pod asks for a second GPU during a rollout.
    assert trainer["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0


def test_every_deployment_has_a_disruption_budget_and_services_reach_pods(rendered: list[Manifest]) -> None:
    pods = {
        n: (w["spec"]["template"]["metadata"]["labels"], containers(w))
        for n, w in {**of_kind(rendered, "Deployment"), **of_kind(rendered, "StatefulSet")}.items()
    }
    budgets = of_kind(rendered, "PodDisruptionBudget").values()
    for name in of_kind(rendered, "Deployment"):
        labels = pods[name][0]
        assert any(b["spec"]["selector"]["matchLabels"].items() <= labels.items() for b in budgets), name
    for name, service in of_kind(rendered, "Service").items():
        matching = [n for n, (labels, _) in pods.items() if service["spec"]["selector"].items() <= labels.items()]
        assert matching, f"Service {name} selects no pod"
        ports = {p["name"] for n in matching for c in pods[n][1] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, name


def _references(obj: Any, kind: str) -> list[tuple[str, str]]:
    """Every (name, key) a pod spec reads from a Secret (``secretKeyRef``) or ConfigMap."""
    found: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        ref = obj.get("secretKeyRef" if kind == "Secret" else "configMapKeyRef")
        if ref:
            found.append((ref["name"], ref["key"]))
        for value in obj.values():
            found += _references(value, kind)
    elif isinstance(obj, list):
        for item in obj:
            found += _references(item, kind)
    return found


def _prod_secret_keys() -> set[str]:
    text = (K8S / "overlays" / "prod" / "credentials.env.example").read_text()
    return {line.split("=")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_every_secret_and_config_reference_resolves(overlay: str, rendered: list[Manifest]) -> None:
    config_maps = of_kind(rendered, "ConfigMap")
    for name, key in _references(rendered, "ConfigMap"):
        assert key in config_maps[name]["data"], (name, key)
    secret_refs = _references(rendered, "Secret") + [
        (r["name"], r["key"]) for auth in of_kind(rendered, "TriggerAuthentication").values()
        for r in auth["spec"]["secretTargetRef"]
    ]  # fmt: skip
    secrets = {n: set(s["data"]) for n, s in of_kind(rendered, "Secret").items()}
    if overlay == "prod":
        # Created by the operator from credentials.env.example: every key read is listed there.
        assert secrets == {}
        secrets = {"photosplat-credentials": _prod_secret_keys()}
    for name, key in secret_refs:
        assert key in secrets[name], (name, key)


def test_prod_documents_exactly_the_credentials_dev_generates() -> None:
    dev = of_kind(render(K8S / "overlays" / "dev"), "Secret")["photosplat-credentials"]
    assert set(dev["data"]) == _prod_secret_keys()


def test_dev_placeholders_fit_together() -> None:
    rendered = render(K8S / "overlays" / "dev")
    secrets = {
        n: {k: base64.b64decode(v).decode() for k, v in s["data"].items()}
        for n, s in of_kind(rendered, "Secret").items()
    }
    app, infra = secrets["photosplat-credentials"], secrets["dev-infra-credentials"]
    services = of_kind(rendered, "Service")
    expected = {
        "bus-url": ("rabbitmq", 5672, infra["rabbitmq-password"]),
        "rabbitmq-management-url": ("rabbitmq", 15672, infra["rabbitmq-password"]),
        "database-url": ("postgres", 5432, infra["postgres-password"]),
        "store-url": ("minio", 9000, infra["minio-root-password"]),
    }
    for key, (host, port, password) in expected.items():
        url = urlsplit(app[key])
        assert (url.hostname, url.port, url.password) == (host, port, password), key
        assert port in {p["port"] for p in services[host]["spec"]["ports"]}
    # Strong enough for status's admin-token rule (22+ characters, 8+ different ones).
    assert len(app["admin-token"]) >= 22 and len(set(app["admin-token"])) >= 8


def test_prod_runs_no_infrastructure_and_dev_keeps_its_data(overlay: str, rendered: list[Manifest]) -> None:
    images = {split_image(c["image"])[0].split("/")[-1] for o in rendered if "template" in o.get("spec", {})
              for c in o["spec"]["template"]["spec"]["containers"]}  # fmt: skip
    stateful = of_kind(rendered, "StatefulSet")
    if overlay == "prod":
        assert not stateful and not of_kind(rendered, "PersistentVolumeClaim") and not of_kind(rendered, "Secret")
        assert not images & {"rabbitmq", "postgres", "minio", "mc"}
        assert not set(of_kind(rendered, "Service")) & set(INFRASTRUCTURE)
    else:
        assert set(stateful) == set(INFRASTRUCTURE)
        for workload in stateful.values():
            (claim,) = workload["spec"]["volumeClaimTemplates"]
            assert claim["metadata"]["name"] in {m["name"] for m in containers(workload)[0]["volumeMounts"]}


def test_images_are_pinned(rendered: list[Manifest]) -> None:
    for obj in rendered:
        for container in obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            name, tag, digest = split_image(container["image"])
            assert tag not in (None, "latest") or digest, container["image"]
            if name.split("/")[-1] not in OWN_IMAGES:
                # Third-party images: the digest too, so a re-pushed tag cannot change what runs.
                assert digest and re.fullmatch(r"sha256:[0-9a-f]{64}", digest), container["image"]


def test_dev_broker_settings_are_composes() -> None:
    composes = (K8S.parent / "rabbitmq" / "rabbitmq.conf").read_text()
    assert (K8S / "overlays" / "dev" / "rabbitmq.conf").read_text() == composes
