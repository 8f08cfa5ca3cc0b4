"""Several services' OpenAPI documents as one (docs/architecture.md §1, "API description").

Behind the gateway the services' paths are disjoint per method (``POST /recon/jobs`` is ingest's,
``GET /recon/jobs`` status's), so the union of their paths is the public API. Components are merged
by name; a schema two services name alike but define differently is renamed in the later one, its
references with it, so neither description is changed by the other. Whatever cannot be merged
(the same operation twice, an operation id twice, a clash of another component) and every service
whose description could not be read is named in the result: a partial description says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

Spec = dict[str, Any]

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MISSING_KEY = "x-photosplat-missing"
CONFLICTS_KEY = "x-photosplat-conflicts"


def merge(
    sources: Sequence[tuple[str, Spec]],
    *,
    title: str,
    missing: Mapping[str, str] | None = None,
) -> Spec:
    """One document of ``sources`` (service name, its OpenAPI document), in their order;
    ``missing`` (service name -> why) are the services whose description could not be read."""
    missing = dict(missing or {})
    first = sources[0][1] if sources else {}
    merged: Spec = {
        "openapi": first.get("openapi", "3.1.0"),
        "info": {"title": title, "version": first.get("info", {}).get("version", "0.1.0")},
        "paths": {},
        "components": {},
    }
    conflicts: list[str] = []
    tags: dict[str, Any] = {}
    for name, spec in sources:
        spec = _rename_clashing_schemas(spec, merged["components"].get("schemas", {}), name)
        conflicts += _add_paths(merged["paths"], spec.get("paths", {}), name)
        conflicts += _add_components(merged["components"], spec.get("components", {}), name)
        tags.update({tag["name"]: tag for tag in spec.get("tags", []) if tag.get("name") not in tags})
    conflicts += _duplicate_operation_ids(merged["paths"])
    if tags:
        merged["tags"] = list(tags.values())
    if not merged["components"]:
        del merged["components"]
    merged["info"]["description"] = _description([n for n, _ in sources], missing, conflicts)
    if missing:
        merged[MISSING_KEY] = missing
    if conflicts:
        merged[CONFLICTS_KEY] = conflicts
    return merged


def operation_ids(spec: Spec) -> list[str]:
    return [
        operation["operationId"]
        for operations in spec.get("paths", {}).values()
        for method, operation in operations.items()
        if method in METHODS and "operationId" in operation
    ]


def _add_paths(into: dict[str, Any], paths: Mapping[str, Any], name: str) -> list[str]:
    conflicts = []
    for path, operations in paths.items():
        target = into.setdefault(path, {})
        for key, value in operations.items():
            if key in target and target[key] != value:
                what = f"{key.upper()} {path}" if key in METHODS else f"{path} ({key})"
                conflicts.append(f"{what} of {name} left out: an earlier service has it")
                continue
            target[key] = value
    return conflicts


def _add_components(into: dict[str, Any], components: Mapping[str, Any], name: str) -> list[str]:
    conflicts = []
    for kind, items in components.items():
        target = into.setdefault(kind, {})
        for key, value in items.items():
            if key in target and target[key] != value:
                conflicts.append(f"components/{kind}/{key} of {name} left out: an earlier service defines it otherwise")
                continue
            target[key] = value
    return conflicts


def _rename_clashing_schemas(spec: Spec, known: Mapping[str, Any], name: str) -> Spec:
    """``spec`` with each schema that ``known`` defines otherwise renamed ``{Name}_{service}``."""
    schemas = spec.get("components", {}).get("schemas", {})
    clashes = [key for key, value in schemas.items() if key in known and known[key] != value]
    if not clashes:
        return spec
    text = json.dumps(spec)
    for key in clashes:
        old, new = f'"#/components/schemas/{key}"', f'"#/components/schemas/{key}_{name}"'
        text = text.replace(old, new)
    renamed: Spec = json.loads(text)
    renamed_schemas = renamed["components"]["schemas"]
    for key in clashes:
        renamed_schemas[f"{key}_{name}"] = renamed_schemas.pop(key)
    return renamed


def _duplicate_operation_ids(paths: Mapping[str, Any]) -> list[str]:
    seen: set[str] = set()
    duplicates = []
    for operation_id in operation_ids({"paths": paths}):
        if operation_id in seen:
            duplicates.append(f"operation id {operation_id!r} is used twice")
        seen.add(operation_id)
    return duplicates


def _description(merged: list[str], missing: Mapping[str, str], conflicts: list[str]) -> str:
    lines = [f"The HTTP API of PhotoSplat: the routes of {', '.join(merged) or 'no service'}."]
    if missing:
        lines.append("")
        lines.append("**Incomplete**: these services' descriptions could not be read, so their routes are missing:")
        lines += [f"- {name}: {why}" for name, why in missing.items()]
        lines.append("Reload to try again.")
    if conflicts:
        lines.append("")
        lines.append("**Not merged**:")
        lines += [f"- {conflict}" for conflict in conflicts]
    return "\n".join(lines)

