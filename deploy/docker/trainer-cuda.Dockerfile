# syntax=docker/dockerfile:1
# The trainer on NVIDIA GPUs: PyTorch's CUDA 13.0 build and gsplat's CUDA kernels compiled into the
# image, for A100 (8.0), A10 / RTX 30xx (8.6), L4 / RTX 40xx (8.9) and H100 / H200 (9.0).
# Build from the repository root (no GPU needed; about 4x one architecture's compile time):
#   docker build -f deploy/docker/trainer-cuda.Dockerfile -t photosplat-trainer:cuda .
# Running needs an NVIDIA driver for CUDA 13.0 (R580 or newer) and the NVIDIA container toolkit.
#
# Why gsplat is built as a wheel here rather than left to compile itself at first import (gsplat 1.5.3,
# gsplat/cuda/_backend.py): at import, _backend first tries `from gsplat import csrc`, an extension built
# ahead of time. Only when that fails does it JIT-compile (torch.utils.cpp_extension._jit_compile into
# TORCH_EXTENSIONS_DIR/gsplat_cuda), and only if cuda_toolkit_available() finds nvcc; otherwise it prints
# "No CUDA toolkit found. gsplat will be disabled." and leaves _C = None, even beside a finished build.
# A JIT cache baked into the image would therefore still need the whole toolkit at run time, and
# _jit_compile re-runs ninja there, which recompiles when TORCH_CUDA_ARCH_LIST or the sources' times
# differ from the build's. gsplat's setup.py builds the same sources ahead of time as the extension
# gsplat.csrc (a CUDAExtension, unless BUILD_NO_CUDA=1; PyPI's wheel is built with it, hence JIT),
# which loads with no toolkit. Both ways were tried on a CUDA 13.0 GPU machine (deploy/README.md).
#
# Both bases are pinned by tag and digest; override with --build-arg to refresh them.
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:13.0.2-devel-ubuntu24.04@sha256:5dc1bca23d05bd37b011be68ec470c03b403a5da07ec3a86e41af9470e9d0cc6
ARG CUDA_BASE_IMAGE=nvidia/cuda:13.0.2-base-ubuntu24.04@sha256:2ab6381d970b211fb93853796dc6707eb8a72575a375c422b17cf4d8b2641701

FROM ${CUDA_DEVEL_IMAGE} AS build
# Compiled for these GPUs without one present (torch reads the list; with none it asks the GPU).
ARG TORCH_CUDA_ARCH_LIST="8.0;8.6;8.9;9.0"
# nvcc processes in parallel: each takes a few GB of memory.
ARG MAX_JOBS=8
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-venv python3.12-dev build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python3.12 -m venv /opt/venv
ENV PATH=/opt/venv/bin:${PATH}

# Constraints: the lock (every package the tests passed with) less its CPU torch, plus the CUDA
# build's own pins (torch, its CUDA libraries, gsplat and its dependencies).
COPY requirements.lock deploy/docker/trainer-cuda.constraints /src/
RUN grep -v '^torch==' /src/requirements.lock > /src/constraints.txt \
    && cat /src/trainer-cuda.constraints >> /src/constraints.txt
RUN pip install -c /src/constraints.txt torch setuptools ninja
# gsplat from its source distribution, against the torch above (hence no build isolation).
RUN TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}" MAX_JOBS="${MAX_JOBS}" \
    pip wheel --no-build-isolation --no-deps --no-binary gsplat -c /src/constraints.txt -w /wheels gsplat
COPY libs /src/libs
COPY services/trainer /src/services/trainer
RUN pip install -c /src/constraints.txt /wheels/gsplat-*.whl \
    && pip install -c /src/constraints.txt /src/libs "/src/services/trainer[cuda]"

FROM ${CUDA_BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:${PATH}
# Python (the venv below links to it) and, for Triton, a C compiler and Python's headers: Triton
# compiles a small launcher module the first time a kernel runs (the training SSIM's blur kernels).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.12 python3.12-dev gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
# The image is useless if gsplat would fall back to compiling: the built extension must be there.
RUN python -c "import importlib.util as u; s = u.find_spec('gsplat.csrc'); assert s and s.origin.endswith('.so'), s"
# The health check of compose and Kubernetes: the worker serves no HTTP (see the script).
COPY deploy/docker/worker-alive.py /usr/local/bin/photosplat-worker-alive

# Not root: the process only needs its working folder (scratch files, checkpoints) and Triton's cache.
RUN useradd --system --uid 10001 --create-home --home-dir /app photosplat
USER photosplat
WORKDIR /app

CMD ["python", "-m", "photosplat_trainer"]
