"""The HTTP routes of ingest, one module per flow; :mod:`photosplat_ingest.api` puts them together."""
