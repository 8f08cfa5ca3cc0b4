"""Reading Prometheus metrics as a scraper would: from the text a ``/metrics`` route answered, or
from this process's registry (before/after values: the registry lives as long as the process)."""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families


def scraped(text: str, name: str, **labels: str) -> float | None:
    """The value of sample ``name`` with exactly these labels in an exposition, None if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return None


def current(name: str, **labels: str) -> float:
    """A sample of this process's registry; 0 when it was never set (a counter before its first inc)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
