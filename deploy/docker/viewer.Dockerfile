# syntax=docker/dockerfile:1
# The viewer service alone: the shared library and this one service, nothing else of the repository.
# Build from the repository root: docker build -f deploy/docker/viewer.Dockerfile .
# Both bases are pinned by tag and by the digest of their multi-architecture index.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
ARG NODE_IMAGE=node:20.19.5-bookworm-slim@sha256:9e70124bd00f47dd023e349cd587132ae61892acc0e47ed641416c3e18f401c3

# The pages' front-end packages (three, @sparkjsdev/spark, swagger-ui-dist), exactly as
# web/package-lock.json pins them. Files only: no install script runs (swagger-ui-dist's analytics
# dependency has one).
FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --omit=dev --ignore-scripts

FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# requirements.lock pins every third-party package to the versions the test suite passed with.
COPY requirements.lock /src/requirements.lock
COPY libs /src/libs
COPY services/viewer /src/services/viewer
RUN pip install -c /src/requirements.lock /src/libs /src/services/viewer && rm -rf /src
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
