"""`python -m photosplat_ingest`: this service alone, on the bus, database and store its settings name."""

from photosplat_libs.runner import run_service
from photosplat_ingest.app import create, deps_for
from photosplat_ingest.settings import IngestSettings

run_service(create, IngestSettings(), with_db=True, deps_for=deps_for)
