"""A client of a running PhotoSplat server: submit photos (resumable presigned uploads), follow the
job, download the scene. ``photosplat submit|status|wait|download`` is its command line."""

from photosplat_client.api import ApiError, FileProblem, PhotoSplatClient, PhotoToDeclare
from photosplat_client.models import Declaration, JobState, JobStatus, SceneFile, Submission, UploadSlot
from photosplat_client.submit import SubmitError, SubmitOptions, SubmitRejected, SubmitResult, submit_photos

__all__ = [
    "ApiError",
    "Declaration",
    "FileProblem",
    "JobState",
    "JobStatus",
    "PhotoSplatClient",
    "PhotoToDeclare",
    "SceneFile",
    "Submission",
    "SubmitError",
    "SubmitOptions",
    "SubmitRejected",
    "SubmitResult",
    "UploadSlot",
    "submit_photos",
]
