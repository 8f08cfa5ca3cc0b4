# syntax=docker/dockerfile:1
# The viewer service alone: the shared library and this one service, nothing else of the repository.
# Build from the repository root: docker build -f deploy/docker/viewer.Dockerfile .
ARG BASE_IMAGE=python:3.11-slim

# The pages' front-end packages (three, @sparkjsdev/spark), exactly as web/package-lock.json pins them.
FROM node:20-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev

FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY libs /src/libs
COPY services/viewer /src/services/viewer
RUN pip install /src/libs /src/services/viewer && rm -rf /src
COPY --from=web /web/node_modules /opt/photosplat/web/node_modules

# Not root: the process only needs its working folder (scratch files, the embedded defaults).
RUN useradd --system --uid 10001 --create-home --home-dir /app photosplat
USER photosplat
WORKDIR /app

ENV PHOTOSPLAT_VIEWER_ASSETS_DIR=/opt/photosplat/web/node_modules \
    PHOTOSPLAT_VIEWER_HOST=0.0.0.0 \
    PHOTOSPLAT_VIEWER_PORT=8000
EXPOSE 8000

CMD ["python", "-m", "photosplat_viewer"]
