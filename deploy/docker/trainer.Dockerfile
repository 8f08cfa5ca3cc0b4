# syntax=docker/dockerfile:1
# The trainer service alone, on the CPU: the shared library and this one service, nothing else of the
# repository. Training on the CPU is slow and meant for small scenes; GPU machines use
# trainer-cuda.Dockerfile (PyTorch's CUDA build and gsplat's kernels compiled in).
# Build from the repository root: docker build -f deploy/docker/trainer.Dockerfile .
# The base is pinned by tag and by the digest of its multi-architecture index.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# requirements.lock pins every third-party package to the versions the test suite passed with. Its
# torch is the CPU build (torch==X+cpu), which only PyTorch's CPU index carries: that one package is
# installed first, from there (PyPI's build of the same version brings several GB of CUDA libraries);
# its own dependencies come from PyPI with the rest, pinned by the lock.
COPY requirements.lock /src/requirements.lock
RUN pip install --no-deps --index-url https://download.pytorch.org/whl/cpu "$(grep '^torch==' /src/requirements.lock)"
COPY libs /src/libs
COPY services/trainer /src/services/trainer
RUN pip install -c /src/requirements.lock /src/libs /src/services/trainer && rm -rf /src
# The health check of compose and Kubernetes: the worker serves no HTTP (see the script).
COPY deploy/docker/worker-alive.py /usr/local/bin/photosplat-worker-alive

# Not root: the process only needs its working folder (scratch files, the embedded defaults).
RUN useradd --system --uid 10001 --create-home --home-dir /app photosplat
USER photosplat
WORKDIR /app

CMD ["python", "-m", "photosplat_trainer"]
