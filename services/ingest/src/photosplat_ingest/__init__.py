"""PhotoSplat ingest service: creates jobs and turns uploaded photos into validated, sanitised images."""
