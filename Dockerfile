# parity daemon image. Build: docker build -t parity:0.1.0 .
# Run:   docker run --rm --read-only --tmpfs /tmp -v "$PWD/compose:/etc/parity:ro" parity:0.1.0 run --config /etc/parity/parity.yaml
#
# Two stages: the first installs the dependencies into a virtualenv (pip, wheels and caches stay
# behind); the second copies only that virtualenv onto the same pinned base, so the venv's
# interpreter path is valid there. The base is pinned by tag; pin it by digest as well
# (python:3.11.10-slim-bookworm@sha256:...) in a registry you control.
#
# Supply chain: every dependency, transitive ones and the build backend included, comes from
# requirements.lock with its sha256 hashes (`make lock` regenerates it from pyproject.toml's pins);
# pip refuses any file whose hash differs. parity itself is installed without dependencies and
# without build isolation, so nothing is fetched unhashed. The dev stack, the demo, the benchmark and
# the tests are not in the build context (.dockerignore): the image runs `parity run | reconcile |
# repair | status | config check | doctor`, not `parity demo` or `parity dev`.
ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/parity
WORKDIR /src
# Dependencies first, so a code change reuses this layer.
COPY requirements.lock ./
RUN /opt/parity/bin/pip install --quiet --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY parity ./parity
RUN /opt/parity/bin/pip install --quiet --no-deps --no-build-isolation . \
    && /opt/parity/bin/parity --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="parity" \
      org.opencontainers.image.description="Continuous verification of PostgreSQL -> DynamoDB migrations" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid/gid so volume permissions and Kubernetes runAsUser can name it.
RUN groupadd --system --gid 10001 parity \
    && useradd --system --uid 10001 --gid parity --home-dir /var/lib/parity --create-home \
       --shell /usr/sbin/nologin parity
COPY --from=build /opt/parity /opt/parity
ENV PATH=/opt/parity/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PARITY_HTTP_PORT=18108
USER 10001:10001
WORKDIR /var/lib/parity
# The state directory (SQLite drift outbox, counters) must survive restarts: mount a volume here.
# Nothing else is written: run with a read-only root filesystem (docker run --read-only, compose
# read_only: true, Kubernetes readOnlyRootFilesystem) and a tmpfs on /tmp.
VOLUME ["/var/lib/parity"]
EXPOSE 18108
# Liveness only (/healthz); readiness (/readyz) also needs partitions assigned, which a second
# replica without partitions never has. The slim image has no curl: Python's urllib does it.
# Set PARITY_HTTP_PORT when daemon.http.port is not 18108.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PARITY_HTTP_PORT', '18108'), timeout=4)"]
ENTRYPOINT ["parity"]
CMD ["--help"]
