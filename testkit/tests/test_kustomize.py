"""The test kit's kustomize renderer on small kustomizations written here: the rules deploy/k8s
relies on, each compared with ``kubectl kustomize`` where kubectl is installed, and the refusals."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from photosplat_testkit.kustomize import Unsupported, render, split_image, strategic_merge

BASE_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: example/web:1.0
          env: [{name: A, value: "1"}, {name: B, value: "2"}]
          ports: [{name: http, containerPort: 8000}]
        - name: sidecar
          image: example/sidecar:2.0@sha256:0000000000000000000000000000000000000000000000000000000000000000
      tolerations: [{key: a, operator: Exists}]
"""
PATCH = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  template:
    spec:
      containers:
        - name: web
          env: [{name: B, value: "two"}, {name: C, value: "3"}]
      tolerations: [{key: b, operator: Exists}]
"""


def _write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return directory


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    _write(tmp_path / "base", {
        "kustomization.yaml": "resources: [web.yaml]\nconfigMapGenerator:\n- name: cfg\n  literals: [x=1, y=2]\n"
                              "generatorOptions: {disableNameSuffixHash: true}\n",
        "web.yaml": BASE_DEPLOYMENT,
    })  # fmt: skip
    return _write(tmp_path / "overlay", {
        "kustomization.yaml": (
            "namespace: team\nresources: [../base]\npatches: [{path: patch.yaml}]\n"
            "images: [{name: example/web, newName: registry.example.com/web, newTag: '1.1'}]\n"
            "configMapGenerator:\n- name: cfg\n  behavior: merge\n  literals: [y=3]\n"
            "secretGenerator:\n- name: creds\n  envs: [creds.env]\n"
            "generatorOptions: {disableNameSuffixHash: true}\n"
        ),
        "patch.yaml": PATCH,
        "creds.env": "# a comment\nuser=me\npassword=a=b\n",
    })  # fmt: skip


def test_an_overlay_renders_as_kustomize_would(overlay: Path) -> None:
    objects = {o["kind"]: o for o in render(overlay)}
    web = objects["Deployment"]
    assert web["metadata"]["namespace"] == "team" and web["spec"]["replicas"] == 3
    first, sidecar = web["spec"]["template"]["spec"]["containers"]
    assert first["image"] == "registry.example.com/web:1.1"
    # Merged by name, in kustomize's order: the patch's entries, then the base's others.
    assert first["env"] == [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}, {"name": "A", "value": "1"}]
    assert first["ports"] == [{"name": "http", "containerPort": 8000}]  # untouched by the patch
    assert sidecar["image"].startswith("example/sidecar:2.0@sha256:")
    assert web["spec"]["template"]["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]  # replaced
    assert objects["ConfigMap"]["data"] == {"x": "1", "y": "3"}
    assert objects["Secret"]["data"] == {"user": "bWU=", "password": "YT1i"}
    if shutil.which("kubectl"):
        out = subprocess.run(["kubectl", "kustomize", str(overlay)], capture_output=True, text=True, check=True).stdout
        theirs = {o["kind"]: o for o in yaml.safe_load_all(out) if o}
        assert {k: v for k, v in theirs.items() if k != "Secret"} == {k: v for k, v in objects.items() if k != "Secret"}


def test_what_it_does_not_implement_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "hashed", {"kustomization.yaml": "configMapGenerator: [{name: c, literals: [a=1]}]\n"})
    with pytest.raises(Unsupported, match="hash"):
        render(tmp_path / "hashed")
    _write(tmp_path / "helm", {"kustomization.yaml": "helmCharts: [{name: x}]\n"})
    with pytest.raises(Unsupported, match="helmCharts"):
        render(tmp_path / "helm")
    _write(tmp_path / "json6902", {
        "kustomization.yaml": "resources: [web.yaml]\n"
        "patches: [{path: p.yaml, target: {kind: Deployment, name: web}}]\n",
        "web.yaml": BASE_DEPLOYMENT,
        "p.yaml": "- op: replace\n  path: /spec/replicas\n  value: 1\n",
    })  # fmt: skip
    with pytest.raises(Unsupported, match="6902"):
        render(tmp_path / "json6902")


def test_strategic_merge_deletes_with_null_and_merges_service_ports_by_port() -> None:
    base = {"spec": {"ports": [{"name": "a", "port": 80}], "type": "ClusterIP", "clusterIP": "None"}}
    patch = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}], "clusterIP": None}}
    assert strategic_merge(base, patch) == {
        "spec": {"ports": [{"name": "a", "port": 80, "targetPort": 8080}, {"port": 443}], "type": "ClusterIP"}
    }
    # The base's items the patch does not name follow the patch's.
    base = {"containers": [{"name": "a"}, {"name": "b", "x": 1}]}
    patch = {"containers": [{"name": "b", "y": 2}]}
    assert strategic_merge(base, patch) == {"containers": [{"name": "b", "x": 1, "y": 2}, {"name": "a"}]}


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("nginx", ("nginx", None, None)),
        ("nginx:1.28.0-alpine", ("nginx", "1.28.0-alpine", None)),
        ("registry:5000/team/app", ("registry:5000/team/app", None, None)),
        ("registry:5000/team/app:2@sha256:ab", ("registry:5000/team/app", "2", "sha256:ab")),
        ("app@sha256:ab", ("app", None, "sha256:ab")),
    ],
)
def test_images_split_into_name_tag_and_digest(image: str, parts: tuple[str, str | None, str | None]) -> None:
    assert split_image(image) == parts
