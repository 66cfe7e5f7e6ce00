# syntax=docker/dockerfile:1
# Two stages: build the locked virtualenv (with a compiler for native speedups), then copy
# it into a slim runtime that runs as a non-root user. tests/test_deploy.py lints this file
# (hadolint) and keeps its uv version and sync flags identical to the Makefile's.
FROM python:3.11-slim AS build
# Build stage only: the compiler never reaches the runtime image, so it is not pinned.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
ENV UV_PROJECT_ENVIRONMENT=/opt/venv UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1
COPY pyproject.toml uv.lock README.md setup.py ./
COPY src ./src
RUN uv sync --frozen --no-editable

FROM python:3.11-slim
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --no-create-home app
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PORT=8080 PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=2)"]
# exec form: the service is PID 1 and receives SIGTERM directly (graceful drain).
ENTRYPOINT ["ingress-egress", "serve"]
