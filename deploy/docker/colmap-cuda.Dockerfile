# syntax=docker/dockerfile:1
# The colmap service with pycolmap's CUDA build (the pycolmap-cuda12 distribution): SIFT extraction
# and matching on the GPU where one is visible, on the CPU where none is (photosplat_colmap.devices).
# Measured on an H200 host (docs/benchmarks.md): buddha's 67 phone-sized photos in 6.1 s against
# 12.6 s with the CPU build. Build from the repository root (no GPU needed):
#   docker build -f deploy/docker/colmap-cuda.Dockerfile -t photosplat-colmap:cuda .
# Running on the GPU needs an NVIDIA driver for CUDA 12 (R525 or newer; R580 runs it too) and the
# NVIDIA container toolkit. The CUDA 12 runtime and cuRAND come as pip wheels, so the base is the same
# slim Python image as colmap.Dockerfile.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DEBIAN_FRONTEND=noninteractive

# The CUDA build's COLMAP is linked against X11 session libraries (its GUI code; never used here).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libsm6 libice6 libx11-6 libxext6 \
    && rm -rf /var/lib/apt/lists/*

# requirements.lock pins every third-party package to the versions the test suite passed with;
# colmap-cuda.constraints pins the CUDA build (the lock's pycolmap version) and its CUDA wheels.
COPY requirements.lock deploy/docker/colmap-cuda.constraints /src/
COPY libs /src/libs
COPY services/colmap /src/services/colmap
# photosplat-colmap depends on `pycolmap`, the CPU build. Both distributions provide the same module
# and Python packaging cannot say that one replaces the other, so the CPU build is removed and the
# CUDA build installed in its place (`pip check` reports the CPU distribution missing: expected).
RUN pip install -c /src/requirements.lock /src/libs /src/services/colmap \
    && pip uninstall -y pycolmap \
    && pip install -c /src/requirements.lock -c /src/colmap-cuda.constraints pycolmap-cuda12 \
    && rm -rf /src
# The image is useless if the module is not the CUDA build (it imports without a GPU).
RUN python -c "import pycolmap; assert pycolmap.has_cuda, 'pycolmap is not the CUDA build'"
# The health check of compose and Kubernetes: the worker serves no HTTP (see the script).
COPY deploy/docker/worker-alive.py /usr/local/bin/photosplat-worker-alive

# Not root: the process only needs its working folder (scratch files, the embedded defaults).
RUN useradd --system --uid 10001 --create-home --home-dir /app photosplat
USER photosplat
WORKDIR /app

CMD ["python", "-m", "photosplat_colmap"]
