# syntax=docker/dockerfile:1
# The gateway: Envoy 1.40 with the transcoder's descriptor set and the error-shaping Lua filter
# baked in. The config itself is NOT in the image: it is the ConfigMap made from
# deploy/base/gateway/envoy.yaml (deploy/render_envoy.py), mounted at /etc/zquant/envoy/.
# Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t zquant-scheduler-gateway:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.15-slim-trixie
ARG ENVOY_IMAGE=envoyproxy/envoy:v1.40.0

# --- descriptor: the same `make proto` step, from this commit's protos --------------------------
FROM ${PYTHON_IMAGE} AS descriptor
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml deploy/docker/requirements.py ./
RUN python requirements.py protoc pyproject.toml > requirements.txt \
 && python -m pip install --only-binary=:all: -r requirements.txt
COPY protos protos
COPY third_party third_party
COPY scripts/gen_protos.py scripts/gen_protos.py
RUN python scripts/gen_protos.py \
 && test -s gateway/build/descriptor.pb

# --- runtime ---------------------------------------------------------------------------------------
FROM ${ENVOY_IMAGE} AS runtime
COPY --from=descriptor --chmod=0444 /src/gateway/build/descriptor.pb /opt/zquant/gateway/descriptor.pb
COPY --chmod=0444 gateway/error_shape.lua /opt/zquant/gateway/error_shape.lua
USER 10001:10001
EXPOSE 8000
# Envoy runs as PID 1, started by nothing that exits (its PR_SET_PDEATHSIG would stop it otherwise).
# --disable-hot-restart: no shared memory or domain socket, so no --base-id clash and nothing to write.
# --concurrency 2 matches the pod's CPU limit.
ENTRYPOINT ["/usr/local/bin/envoy"]
CMD ["-c", "/etc/zquant/envoy/envoy.yaml", "--disable-hot-restart", "--concurrency", "2", "--log-level", "info"]
