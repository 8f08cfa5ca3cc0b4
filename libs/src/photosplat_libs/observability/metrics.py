"""Every Prometheus metric PhotoSplat exports, in one module, on the process's default registry.

One place, so that deploy/grafana and deploy/prometheus can be checked against what the code really
exports (tests/test_deploy_monitoring.py). Labels are bounded sets: stage and outcome names, queue
names of the topology, HTTP methods and route *templates* (never raw paths: a path carries job ids).
Each process exports what it does: the HTTP services the ``http_*`` metrics, the workers the
``stage_*``/``worker_*`` ones, status the ``jobs*`` gauges; queue gauges come from every consumer.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Seconds; SfM and training runs take from seconds (tests, tiny scenes) to hours.
STAGE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800)
# Seconds until the response starts: API answers are fast, multipart uploads are not.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

# status: read from the database (the one truth across restarts and replicas, see StatusMetrics).
JOBS = Gauge("photosplat_jobs", "Jobs in the database by status", ["status"])
JOBS_STUCK = Gauge(
    "photosplat_jobs_stuck",
    "Unfinished jobs whose worker started them and then went silent for longer than the lease "
    "(recovery should have re-dispatched or failed them)",
)

# workers (colmap: stage sfm, trainer: stage train)
STAGE_DURATION = Histogram(
    "photosplat_stage_duration_seconds",
    "Duration of one run of a stage's work in a worker, by outcome (done, failed, cancelled, interrupted)",
    ["stage", "outcome"],
    buckets=STAGE_BUCKETS,
)
STAGE_FAILURES = Counter(
    "photosplat_stage_failures_total", "Failed runs of a stage; final=true failed the job", ["stage", "final"]
)
STAGE_RETRIES = Counter(
    "photosplat_stage_retries_total", "Failed runs of a stage handed back to the queue for another delivery", ["stage"]
)
WORKER_JOBS_RUNNING = Gauge("photosplat_worker_jobs_running", "Jobs this worker process is running", ["stage"])
WORKER_PROGRESS_STALLED = Gauge(
    "photosplat_worker_progress_stalled_seconds",
    "Seconds since the progress of the job this worker runs last advanced (0 when idle); heartbeats "
    "keep flowing from a hung job, this does not",
    ["stage"],
)
GPU_SECONDS = Counter("photosplat_gpu_seconds_total", "GPU seconds spent training finished jobs", ["stage"])

# the bus, as each consumer sees it (RabbitMQ: a passive declare; ready messages, not unacked ones)
QUEUE_MESSAGES = Gauge("photosplat_queue_messages", "Messages waiting in a queue (not yet delivered)", ["queue"])
QUEUE_CONSUMERS = Gauge("photosplat_queue_consumers", "Consumers attached to a queue", ["queue"])
DEAD_LETTERS = Counter(
    "photosplat_dead_letters_total", "Dead letters received, by the queue they died in", ["queue"]
)

# HTTP services (ingest, status, viewer; the whole app in `photosplat up`)
HTTP_REQUESTS = Counter(
    "photosplat_http_requests_total", "HTTP requests by route template and status code", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "photosplat_http_request_duration_seconds",
    "Seconds until the response started (streams and downloads are not held open in it)",
    ["method", "route"],
    buckets=HTTP_BUCKETS,
)
