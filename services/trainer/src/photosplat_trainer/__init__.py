"""The trainer worker service: SfmDone in, TrainingDone (or StageFailed) out."""
