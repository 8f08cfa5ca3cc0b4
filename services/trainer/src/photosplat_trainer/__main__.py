"""`python -m photosplat_trainer`: this service alone, on the bus, database and store its settings name."""

from photosplat_libs.runner import run_service
from photosplat_trainer.app import create
from photosplat_trainer.settings import TrainerSettings

run_service(create, TrainerSettings(), with_db=False)
