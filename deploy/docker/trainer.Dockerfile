# syntax=docker/dockerfile:1
# The trainer service alone: the shared library and this one service, nothing else of the repository.
# Build from the repository root: docker build -f deploy/docker/trainer.Dockerfile .
# A CUDA base (e.g. nvidia/cuda:12.4.1-devel-ubuntu22.04 with Python 3.11) can be passed with
# --build-arg BASE_IMAGE=... when gsplat must compile its kernels; the PyTorch wheels bring their own
# CUDA runtime, so the slim image runs on a GPU host with the NVIDIA container toolkit.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY libs /src/libs
COPY services/trainer /src/services/trainer
RUN pip install /src/libs /src/services/trainer && rm -rf /src

# Not root: the process only needs its working folder (scratch files, the embedded defaults).
RUN useradd --system --uid 10001 --create-home --home-dir /app photosplat
USER photosplat
WORKDIR /app

CMD ["python", "-m", "photosplat_trainer"]
