#!/usr/bin/env python3
"""Asks the Mnemo server in this container for its grpc.health.v1 status.

Exits 0 when the service is SERVING, 1 otherwise (loading, draining, down).
The image's HEALTHCHECK runs it; Kubernetes can run it as an exec probe
where its native gRPC probe cannot go (TLS on the port).

    mnemo-healthcheck                      # mnemo.v1.MemoryService
    mnemo-healthcheck ""                   # the server as a whole

It reads the server's own settings from the environment: the port of
MNEMO_ADDRESS (default 50051) and, when MNEMO_TLS_CERT_FILE is set, speaks
TLS, trusting MNEMO_HEALTHCHECK_CA_FILE (default: the server's certificate)
and presenting MNEMO_HEALTHCHECK_CERT_FILE/KEY_FILE when the server demands
client certificates. MNEMO_HEALTHCHECK_TLS_NAME overrides the name checked
against the certificate (default localhost). Health needs no API key.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _read(name: str) -> bytes | None:
    path = os.environ.get(name, "")
    return Path(path).read_bytes() if path else None


def channel(env: dict[str, str]) -> grpc.Channel:
    port = env.get("MNEMO_ADDRESS", "0.0.0.0:50051").rpartition(":")[2] or "50051"
    target = env.get("MNEMO_HEALTHCHECK_TARGET", f"127.0.0.1:{port}")
    if not env.get("MNEMO_TLS_CERT_FILE"):
        return grpc.insecure_channel(target)
    roots = _read("MNEMO_HEALTHCHECK_CA_FILE") or _read("MNEMO_TLS_CERT_FILE")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=roots,
        private_key=_read("MNEMO_HEALTHCHECK_KEY_FILE"),
        certificate_chain=_read("MNEMO_HEALTHCHECK_CERT_FILE"),
    )
    name = env.get("MNEMO_HEALTHCHECK_TLS_NAME", "localhost")
    return grpc.secure_channel(target, credentials, options=[("grpc.ssl_target_name_override", name)])


def main(argv: list[str]) -> int:
    service = argv[1] if len(argv) > 1 else "mnemo.v1.MemoryService"
    timeout = float(os.environ.get("MNEMO_HEALTHCHECK_TIMEOUT_S", "3"))
    try:
        with channel(dict(os.environ)) as ch:
            response = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
