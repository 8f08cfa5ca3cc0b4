# syntax=docker/dockerfile:1
# The status service alone: the shared library and this one service, nothing else of the repository.
# Build from the repository root: docker build -f deploy/docker/status.Dockerfile .
# The base is pinned by tag and by the digest of its multi-architecture index.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# requirements.lock pins every third-party package to the versions the test suite passed with.
COPY requirements.lock /src/requirements.lock
COPY libs /src/libs
COPY services/status /src/services/status
RUN pip install -c /src/requirements.lock /src/libs /src/services/status && rm -rf /src

# Not root: the process only needs its working folder (scratch files, the embedded defaults).
RUN useradd --system --uid 10001 --create-home --home-dir /app photosplat
USER photosplat
WORKDIR /app

ENV PHOTOSPLAT_STATUS_HOST=0.0.0.0 \
    PHOTOSPLAT_STATUS_PORT=8000
EXPOSE 8000

CMD ["python", "-m", "photosplat_status"]
