"""`python -m photosplat_colmap`: this service alone, on the bus, database and store its settings name."""

from photosplat_libs.runner import run_service
from photosplat_colmap.app import create
from photosplat_colmap.settings import ColmapSettings

run_service(create, ColmapSettings(), with_db=False)
