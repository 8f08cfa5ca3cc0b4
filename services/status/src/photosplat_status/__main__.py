"""`python -m photosplat_status`: this service alone, on the bus, database and store its settings name."""

from photosplat_libs.runner import run_service
from photosplat_status.app import create
from photosplat_status.settings import StatusSettings

run_service(create, StatusSettings(), with_db=True)
