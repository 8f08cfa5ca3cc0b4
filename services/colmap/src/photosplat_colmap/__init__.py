"""The colmap worker service: ImagesValidated in, SfmDone (or StageFailed) out."""
