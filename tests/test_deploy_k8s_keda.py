"""deploy/k8s/base/keda.yaml: the workers scale on the queues they really consume, counted so that a
job in progress keeps its worker; and the KEDA schemas kept in deploy/k8s/schemas refuse what KEDA
would misread."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from photosplat_colmap.app import create as create_colmap
from photosplat_colmap.settings import ColmapSettings
from photosplat_libs import topology
from photosplat_libs.bus import create_bus
from photosplat_libs.service import Deps
from photosplat_libs.store import create_store
from photosplat_testkit.kustomize import Manifest, render
from photosplat_trainer.app import create as create_trainer
from photosplat_trainer.settings import TrainerSettings

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"


def _validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((K8S / "schemas" / f"keda-{kind.lower()}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.fixture(scope="module", params=("dev", "prod"))
def rendered(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(K8S / "overlays" / request.param)


def _named(objects: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _consumed_queue(service: str, tmp_path: Path) -> str:
    """The queue the service's own composition root makes its worker consume."""
    deps = Deps(bus=create_bus("memory://"), store=create_store(f"file://{tmp_path}"))

    async def work(event: Any, ctx: Any) -> Any:
        raise AssertionError("never runs")

    if service == "colmap":
        return create_colmap(ColmapSettings(), deps, work=work).queue.name
    return create_trainer(TrainerSettings(), deps, work=work).queue.name


@pytest.mark.parametrize("service", ["colmap", "trainer"])
def test_each_worker_scales_on_the_queue_it_consumes(rendered: list[Manifest], service: str, tmp_path: Path) -> None:
    scaled = _named(rendered, "ScaledObject")[service]
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"name": service}
    assert service in _named(rendered, "Deployment")
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    queue = trigger["metadata"]["queueName"]
    assert queue == _consumed_queue(service, tmp_path)
    assert queue in {q.name for q in topology.DURABLE_QUEUES}
    # Jobs in progress are unacknowledged messages: only the management API counts them.
    assert trigger["metadata"]["protocol"] == "http"
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["metadata"].get("excludeUnacknowledged", "false") == "false"
    assert spec["minReplicaCount"] == 0 < spec["maxReplicaCount"]
    auth = _named(rendered, "TriggerAuthentication")[trigger["authenticationRef"]["name"]]
    assert [r["parameter"] for r in auth["spec"]["secretTargetRef"]] == ["host"]


def _scaled_object() -> Manifest:
    return copy.deepcopy(_named(render(K8S / "overlays" / "dev"), "ScaledObject")["trainer"])


def _trigger_metadata(obj: Manifest) -> dict[str, Any]:
    return obj["spec"]["triggers"][0]["metadata"]


def test_the_schema_accepts_keda_documentations_own_example() -> None:
    # The AMQP example of KEDA's RabbitMQ scaler page (keda-docs content/docs/2.18/scalers/rabbitmq-queue.md).
    example = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "rabbitmq-scaledobject", "namespace": "default"},
        "spec": {
            "scaleTargetRef": {"name": "rabbitmq-deployment"},
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {"protocol": "amqp", "queueName": "testqueue", "mode": "QueueLength", "value": "20"},
                    "authenticationRef": {"name": "keda-trigger-auth-rabbitmq-conn"},
                }
            ],
        },
    }
    _validator("ScaledObject").validate(example)


def _unquoted_value(obj: Manifest) -> None:
    _trigger_metadata(obj)["value"] = 1


def _misspelt_field(obj: Manifest) -> None:
    obj["spec"]["minReplicas"] = obj["spec"].pop("minReplicaCount")


def _unacked_over_amqp(obj: Manifest) -> None:
    _trigger_metadata(obj).update(protocol="amqp", excludeUnacknowledged="false")


def _rate_over_amqp(obj: Manifest) -> None:
    _trigger_metadata(obj).update(protocol="amqp", mode="MessageRate")


def _no_queue(obj: Manifest) -> None:
    del _trigger_metadata(obj)["queueName"]


def _no_target(obj: Manifest) -> None:
    del obj["spec"]["scaleTargetRef"]["name"]


@pytest.mark.parametrize(
    "breakage", [_unquoted_value, _misspelt_field, _unacked_over_amqp, _rate_over_amqp, _no_queue, _no_target]
)
def test_the_schema_refuses_what_keda_would_misread(breakage: Any) -> None:
    obj = _scaled_object()
    _validator("ScaledObject").validate(obj)
    breakage(obj)
    with pytest.raises(jsonschema.ValidationError):
        _validator("ScaledObject").validate(obj)


def test_the_trigger_authentication_schema_needs_whole_secret_references() -> None:
    auth = copy.deepcopy(_named(render(K8S / "overlays" / "dev"), "TriggerAuthentication")["rabbitmq-management"])
    _validator("TriggerAuthentication").validate(auth)
    del auth["spec"]["secretTargetRef"][0]["key"]
    with pytest.raises(jsonschema.ValidationError):
        _validator("TriggerAuthentication").validate(auth)
    with pytest.raises(jsonschema.ValidationError):
        _validator("TriggerAuthentication").validate({**auth, "spec": {}})
