"""Metrics and structured logs of every service (docs/architecture.md §10).

- :mod:`.metrics`: every Prometheus metric, on the process's default registry;
- :mod:`.http`: the web services' latency middleware and ``/metrics`` route (:func:`instrument`);
- :mod:`.probes`: a worker's metrics port, ``/metrics`` with ``/healthz`` and ``/readyz``;
- :mod:`.queues`: queue depth and consumer count refreshed from the bus;
- :mod:`.logs`: text or JSON log lines tagged with ``job_id``, ``stage`` and ``attempt``.
"""

from photosplat_libs.observability.http import instrument
from photosplat_libs.observability.logs import configure_logging, log_context
from photosplat_libs.observability.probes import ProbeServer
from photosplat_libs.observability.queues import QueueGauges

__all__ = ["ProbeServer", "QueueGauges", "configure_logging", "instrument", "log_context"]
