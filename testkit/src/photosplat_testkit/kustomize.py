"""A renderer of the kustomize rules deploy/k8s uses, so tests can check what an overlay renders where
no kustomize binary is installed (none is published on PyPI).

Supported: ``resources`` (files and directories, recursively), ``configMapGenerator`` and
``secretGenerator`` (literals, files, envs; behaviors create, merge, replace) with
``generatorOptions.disableNameSuffixHash: true``, ``patches`` that are strategic-merge patches (by the
patch's kind and name, or its ``target``), ``images`` and ``namespace``. Anything else raises
:class:`Unsupported` rather than rendering something kustomize would not. Where ``kubectl kustomize``
exists, tests compare the two renderings.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_KNOWN_FIELDS = {
    "apiVersion", "kind", "resources", "namespace", "images", "patches",
    "configMapGenerator", "secretGenerator", "generatorOptions",
}  # fmt: skip
# Kinds without a namespace (the ones a PhotoSplat deployment could contain).
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "PersistentVolume",
    "StorageClass", "IngressClass", "PriorityClass", "ClusterTriggerAuthentication",
}  # fmt: skip
# Lists a strategic-merge patch merges item by item (Kubernetes' patchMergeKey); others it replaces.
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
    "volumeMounts": "mountPath", "imagePullSecrets": "name",
}  # fmt: skip


class Unsupported(ValueError):
    """The kustomization uses something this renderer does not implement."""


def render(directory: Path | str) -> list[Manifest]:
    """Every object the kustomization in ``directory`` renders, like ``kustomize build``."""
    return _build(Path(directory))


def _build(directory: Path) -> list[Manifest]:
    kustomization = _load_kustomization(directory)
    unknown = set(kustomization) - _KNOWN_FIELDS
    if unknown:
        raise Unsupported(f"{directory}: fields not supported here: {sorted(unknown)}")
    objects: list[Manifest] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        objects += _build(path) if path.is_dir() else _load_documents(path)
    options = kustomization.get("generatorOptions", {})
    for kind, field in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for spec in kustomization.get(field, []):
            _generate(objects, kind, spec, directory, options)
    for patch in kustomization.get("patches", []):
        _apply_patch(objects, patch, directory)
    for image in kustomization.get("images", []):
        for obj in objects:
            _set_images(obj, image)
    if "namespace" in kustomization:
        for obj in objects:
            if obj["kind"] not in CLUSTER_SCOPED:
                obj.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return objects


def _load_kustomization(directory: Path) -> dict[str, Any]:
    for name in KUSTOMIZATION_FILES:
        if (directory / name).is_file():
            return yaml.safe_load((directory / name).read_text()) or {}
    raise FileNotFoundError(f"no kustomization in {directory}")


def _load_documents(path: Path) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


# --- generators --------------------------------------------------------------------------------


def _generate(
    objects: list[Manifest], kind: str, spec: dict[str, Any], directory: Path, options: dict[str, Any]
) -> None:
    if not options.get("disableNameSuffixHash"):
        raise Unsupported("generated names with a hash suffix (set generatorOptions.disableNameSuffixHash)")
    data = _generator_data(spec, directory)
    behavior = spec.get("behavior", "create")
    existing = _find(objects, kind, spec["name"])
    if behavior == "create":
        if existing is not None:
            raise ValueError(f"{kind} {spec['name']} is generated twice (use behavior merge or replace)")
        objects.append(_generated_object(kind, spec, data))
        return
    if existing is None:
        raise ValueError(f"{kind} {spec['name']}: behavior {behavior} but no such object in the resources")
    encoded = _encode(kind, data)
    existing["data"] = {**existing.get("data", {}), **encoded} if behavior == "merge" else encoded


def _generator_data(spec: dict[str, Any], directory: Path) -> dict[str, str]:
    data: dict[str, str] = {}
    for literal in spec.get("literals", []):
        key, _, value = literal.partition("=")
        data[key] = value
    for entry in spec.get("files", []):
        key, _, path = entry.rpartition("=")
        data[key or Path(path).name] = (directory / path).read_text()
    for env_file in spec.get("envs", []):
        for line in (directory / env_file).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                data[key.strip()] = value
    return data


def _encode(kind: str, data: dict[str, str]) -> dict[str, str]:
    if kind == "Secret":
        return {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return dict(data)


def _generated_object(kind: str, spec: dict[str, Any], data: dict[str, str]) -> Manifest:
    obj: Manifest = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}, "data": _encode(kind, data)}
    if kind == "Secret":
        obj["type"] = spec.get("type", "Opaque")
    return obj


# --- patches -----------------------------------------------------------------------------------


def _apply_patch(objects: list[Manifest], entry: dict[str, Any], directory: Path) -> None:
    text = (directory / entry["path"]).read_text() if "path" in entry else entry["patch"]
    patch = yaml.safe_load(text)
    if not isinstance(patch, dict) or "kind" not in patch:
        raise Unsupported("only strategic-merge patches (a partial object), not JSON 6902 operations")
    target = entry.get("target", {"kind": patch["kind"], "name": patch["metadata"]["name"]})
    matched = [o for o in objects if o["kind"] == target["kind"] and o["metadata"]["name"] == target["name"]]
    if not matched:
        raise ValueError(f"patch {entry}: no {target['kind']} named {target['name']}")
    body = {k: v for k, v in patch.items() if k not in ("apiVersion", "kind")}
    body["metadata"] = {k: v for k, v in patch.get("metadata", {}).items() if k != "name"}
    for obj in matched:
        merged = strategic_merge(obj, body)
        obj.clear()
        obj.update(merged)


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """``patch`` merged into ``base`` as Kubernetes' strategic merge patch does for the fields
    PhotoSplat patches: maps merge key by key (null deletes), lists of named items merge by their
    merge key, any other list is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = strategic_merge(base[key], value, key) if key in base else copy.deepcopy(value)
        return merged
    key = _merge_key(field, base + patch) if isinstance(base, list) and isinstance(patch, list) else None
    if key is not None:
        # kustomize's order: the patch's items (merged into their base item), then the base's others.
        by_key = {item.get(key): item for item in base}
        merged_list = [
            strategic_merge(by_key[i.get(key)], i) if i.get(key) in by_key else copy.deepcopy(i) for i in patch
        ]
        patched = {item.get(key) for item in patch}
        return merged_list + [copy.deepcopy(item) for item in base if item.get(key) not in patched]
    return copy.deepcopy(patch)


def _merge_key(field: str, items: list[Any]) -> str | None:
    if not all(isinstance(item, dict) for item in items):
        return None
    if field == "ports":  # a container's ports merge by number, a Service's by port
        return "containerPort" if all("containerPort" in i for i in items) else "port"
    return _MERGE_KEYS.get(field)


# --- images ------------------------------------------------------------------------------------


def _set_images(node: Any, rule: dict[str, Any]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers") and isinstance(value, list):
                for container in value:
                    container["image"] = _new_image(container["image"], rule)
            else:
                _set_images(value, rule)
    elif isinstance(node, list):
        for item in node:
            _set_images(item, rule)


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` as (name, tag, digest); a registry's port is part of the name."""
    rest, _, digest = image.partition("@")
    name, colon, tag = rest.rpartition(":")
    if not colon or "/" in tag:
        return rest, None, digest or None
    return name, tag, digest or None


def _new_image(image: str, rule: dict[str, Any]) -> str:
    name, tag, digest = split_image(image)
    if name != rule["name"]:
        return image
    name = rule.get("newName", name)
    if "digest" in rule:
        return f"{name}@{rule['digest']}"
    tag = str(rule["newTag"]) if "newTag" in rule else tag
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest and "newTag" not in rule else "")


def _find(objects: list[Manifest], kind: str, name: str) -> Manifest | None:
    return next((o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name), None)
