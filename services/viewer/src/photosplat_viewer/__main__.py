"""`python -m photosplat_viewer`: this service alone, on the bus, database and store its settings name."""

from photosplat_libs.runner import run_service
from photosplat_viewer.app import create
from photosplat_viewer.settings import ViewerSettings

run_service(create, ViewerSettings(), with_db=True)
