"""deploy/grafana and deploy/prometheus against the code: every metric, label and label value the
dashboard and the alert rules use is one the services export (photosplat_libs.observability.metrics),
every exported metric is on the dashboard, the dashboard is well-formed Grafana JSON, and the rule
file has the structure `promtool check rules` demands (promtool itself is not installed here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from photosplat_libs import topology
from photosplat_libs.bus import DEAD_LETTER_QUEUE
from photosplat_libs.db.models import JobStatus
from photosplat_libs.events import Stage
from photosplat_libs.observability import metrics
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
DASHBOARD = DEPLOY / "grafana" / "photosplat-dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yaml"
SCRAPE = DEPLOY / "prometheus" / "prometheus.yaml"

# The sample names each metric type exposes (prometheus_client's text format).
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}
# Labels Prometheus adds to every scraped series, and the histogram's bucket bound.
TARGET_LABELS = {"instance", "job", "le"}
# Label values with a closed set in the code.
KNOWN_VALUES: dict[str, set[str]] = {
    "queue": {spec.name for spec in topology.DURABLE_QUEUES} | {DEAD_LETTER_QUEUE},
    "stage": {stage.value for stage in Stage},
    "status": {status.value for status in JobStatus},
    "outcome": {"done", "failed", "cancelled", "interrupted"},
    "final": {"true", "false"},
}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}


def exported() -> dict[str, tuple[str, set[str]]]:
    """Sample name -> (metric name, its labels), for every metric of the observability module."""
    names: dict[str, tuple[str, set[str]]] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            (family,) = value.describe()
            for suffix in SUFFIXES[family.type]:
                names[family.name + suffix] = (family.name, set(value._labelnames))
    return names


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def used_metrics(expr: str) -> set[str]:
    return set(re.findall(r"\b(photosplat_[a-z0-9_]+)\b", expr))


def all_exprs() -> list[str]:
    return dashboard_exprs() + [r["expr"] for r in rules()]


def test_the_registry_has_every_metric_of_the_module() -> None:
    registered = {family.name for family in REGISTRY.collect()}
    assert {name for name, _ in exported().values()} <= registered


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_metric_used_is_exported(source: str) -> None:
    exprs = dashboard_exprs() if source == "dashboard" else [r["expr"] for r in rules()]
    known = exported()
    for expr in exprs:
        assert used_metrics(expr), expr
        assert used_metrics(expr) <= set(known), f"{expr}: {used_metrics(expr) - set(known)} not exported"


def test_every_exported_metric_is_on_the_dashboard() -> None:
    on_dashboard = {exported()[name][0] for expr in dashboard_exprs() for name in used_metrics(expr)}
    assert on_dashboard == {name for name, _ in exported().values()}


def test_labels_and_values_used_are_the_codes() -> None:
    known = exported()
    for expr in all_exprs():
        labels_in_scope: set[str] = set(TARGET_LABELS)
        for name, selector in re.findall(r"\b(photosplat_[a-z0-9_]+)(?:\{([^}]*)\})?", expr):
            labels = known[name][1]
            labels_in_scope |= labels
            for label, value in re.findall(r'(\w+)\s*=~?\s*"([^"]*)"', selector):
                assert label in labels | {"le"}, f"{expr}: {name} has no label {label}"
                if label in KNOWN_VALUES and not value.startswith(("5", "4")):
                    assert set(value.split("|")) <= KNOWN_VALUES[label], f"{expr}: {label}={value}"
        for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
            grouped = {g.strip() for g in grouping.split(",") if g.strip()}
            assert grouped <= labels_in_scope, f"{expr}: grouping by {grouped - labels_in_scope}"


def test_the_dashboard_is_grafana_json() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert all(isinstance(grid[k], int) for k in ("h", "w", "x", "y")) and grid["x"] + grid["w"] <= 24
        assert panel["type"] in {"row", "stat", "timeseries", "gauge", "table", "bargauge"}
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert panel["targets"] and len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert _balanced(target["expr"]), target["expr"]


def test_the_alert_rules_have_promtools_structure() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    group_names = [g["name"] for g in document["groups"]]
    assert len(group_names) == len(set(group_names))
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= RULE_KEYS, rule
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip() and _balanced(rule["expr"])
            if "record" in rule:
                assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", rule["record"])
                assert not {"for", "annotations", "keep_firing_for"} & set(rule)
                continue
            assert re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", rule["alert"])
            assert DURATION.match(str(rule.get("for", "0s"))), rule["for"]
            for field in ("labels", "annotations"):
                values = rule.get(field, {})
                assert all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()), rule
                assert all(v.count("{{") == v.count("}}") for v in values.values()), rule
            assert {"summary", "description"} <= set(rule["annotations"])


def test_the_issues_alerts_are_there() -> None:
    by_name = {r["alert"]: r["expr"] for r in rules() if "alert" in r}
    assert "photosplat_jobs_stuck" in by_name["PhotoSplatJobsStuck"]
    assert "photosplat_dead_letters_total" in by_name["PhotoSplatDeadLetters"]
    trainer = by_name["PhotoSplatNoTrainerConsumers"]
    assert 'photosplat_queue_consumers{queue="trainer.work"}' in trainer
    assert topology.TRAINER_WORK.name == "trainer.work"


def test_the_scrape_config_loads_the_rules_and_targets_the_services_ports() -> None:
    config = yaml.safe_load(SCRAPE.read_text())
    assert [(SCRAPE.parent / f).is_file() for f in config["rule_files"]] == [True]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    targets = {t for job in config["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    for name in ("ingest", "status", "viewer"):
        assert f"{name}:{compose[name]['environment'][f'PHOTOSPLAT_{name.upper()}_PORT']}" in targets
    for name in ("colmap", "trainer"):
        assert f"{name}:{compose[name]['environment'][f'PHOTOSPLAT_{name.upper()}_METRICS_PORT']}" in targets


def _balanced(text: str) -> bool:
    depth = {"(": 0, "{": 0, "[": 0}
    closing = {")": "(", "}": "{", "]": "["}
    for char in re.sub(r'"[^"]*"', "", text):
        if char in depth:
            depth[char] += 1
        elif char in closing:
            depth[closing[char]] -= 1
            if depth[closing[char]] < 0:
                return False
    return not any(depth.values())
