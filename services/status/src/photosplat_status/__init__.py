"""PhotoSplat status service: the projection of every event into the database, the job API and
the recovery of interrupted jobs."""
