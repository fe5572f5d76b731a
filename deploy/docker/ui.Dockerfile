# syntax=docker/dockerfile:1
# The admin web UI: the Vite build of web/, served by gateway/static_server.py (standard library only)
# on :8001 under /admin/scheduler/; Envoy routes /admin/scheduler/ to the `ui` Service.
# Build from the repository root:
#   docker build -f deploy/docker/ui.Dockerfile -t zquant-scheduler-ui:0.1.0 .
ARG NODE_IMAGE=node:22.23.4-trixie-slim
ARG PYTHON_IMAGE=python:3.11.15-slim-trixie

# --- build: npm ci (exact versions from package-lock.json), type check, vite build ---------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build \
 && test -s dist/index.html

# --- runtime: the same static server as `make up`, nothing else -------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN python -m pip uninstall --yes --no-cache-dir --root-user-action=ignore setuptools wheel pip \
 && groupadd --system --gid 10001 zquant \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin zquant
COPY --chmod=0444 gateway/__init__.py gateway/static_server.py /app/gateway/
COPY --from=build /src/web/dist /app/web/dist
RUN python -m compileall -q /app/gateway
ENV PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /app
USER 10001:10001
EXPOSE 8001
CMD ["python", "-m", "gateway.static_server", "--host", "0.0.0.0", "--port", "8001", "--web-dist", "/app/web/dist"]
