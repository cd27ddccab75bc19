"""The gRPC server itself: its options, the services it carries (MemoryService,
AdminService, ExtractionService, health, reflection), the port it binds (TLS when configured)
and the health status it reports. The App (app.py) decides when.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from mnemo.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    extraction_service_pb2,
    extraction_service_pb2_grpc,
    memory_service_pb2,
    memory_service_pb2_grpc,
)
from mnemo_server.api import decoding
from mnemo_server.api.admin import AdminServicer
from mnemo_server.api.extraction import ExtractionServicer
from mnemo_server.api.memory import MemoryServicer
from mnemo_server.config import ServerSettings, Settings

#: Largest response message: bounded by the request limits (top_k, page sizes), not by clients.
MAX_SEND_BYTES = 64 * 1024 * 1024

SERVICE_NAMES = (
    memory_service_pb2.DESCRIPTOR.services_by_name["MemoryService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    extraction_service_pb2.DESCRIPTOR.services_by_name["ExtractionService"].full_name,
)

#: The services the HTTP side (api/web.py) forwards.
SERVICES = (
    memory_service_pb2.DESCRIPTOR.services_by_name["MemoryService"],
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"],
    extraction_service_pb2.DESCRIPTOR.services_by_name["ExtractionService"],
)


def grpc_options(cfg: ServerSettings, *, reuse_port: bool = False) -> list[tuple[str, int]]:
    """Message sizes and keepalive; `reuse_port` for the workers of a fleet,
    which all listen on one address (the kernel spreads the connections).
    Off otherwise, so a second server on a port in use fails to start."""
    keepalive_ms = int(cfg.keepalive_time_s * 1000)
    return [
        ("grpc.max_receive_message_length", cfg.max_message_bytes),
        ("grpc.max_send_message_length", max(cfg.max_message_bytes, MAX_SEND_BYTES)),
        # Long watch and search streams: ping idle connections, and let
        # clients ping us as often as every 10 s without being cut off.
        ("grpc.keepalive_time_ms", keepalive_ms),
        ("grpc.keepalive_timeout_ms", int(cfg.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ]


def build_server(
    settings: Settings, interceptors: Sequence[grpc.aio.ServerInterceptor], *, reuse_port: bool = False
) -> grpc.aio.Server:
    """A server not yet started, with `interceptors` in the order given."""
    return grpc.aio.server(
        options=grpc_options(settings.server, reuse_port=reuse_port),
        compression=grpc.Compression.NoCompression,
        interceptors=tuple(interceptors),
    )


def add_services(
    server: grpc.aio.Server,
    memory: MemoryServicer,
    admin: AdminServicer,
    extraction: ExtractionServicer,
    health: HealthServicer,
) -> None:
    """Registers the servicers, health and reflection."""
    # Requests that do not decode get REQUEST_UNDECODABLE, not grpc's UNKNOWN.
    add_memory = memory_service_pb2_grpc.add_MemoryServiceServicer_to_server
    decoding.add_servicer(add_memory, memory, server)
    decoding.add_servicer(admin_service_pb2_grpc.add_AdminServiceServicer_to_server, admin, server)
    add_extraction = extraction_service_pb2_grpc.add_ExtractionServiceServicer_to_server
    decoding.add_servicer(add_extraction, extraction, server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            *SERVICE_NAMES,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )


async def set_health(health: HealthServicer, serving: bool) -> None:
    """The overall status ("") and each service's. The overall one is set
    last going up and first going down, so whoever sees it SERVING finds
    every service SERVING too."""
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    names = (*SERVICE_NAMES, "") if serving else ("", *SERVICE_NAMES)
    for name in names:
        await health.set(name, status)


def bind(server: grpc.aio.Server, settings: Settings) -> int:
    """Opens the port: TLS only when a certificate is configured (then
    plaintext is refused), requiring client certificates when a client CA is."""
    tls = settings.tls
    address = settings.server.address
    if not tls.enabled:
        return int(server.add_insecure_port(address))
    client_ca = Path(tls.client_ca_file).expanduser().read_bytes() if tls.client_ca_file else None
    credentials = grpc.ssl_server_credentials(
        [(Path(tls.key_file).expanduser().read_bytes(), Path(tls.cert_file).expanduser().read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )
    return int(server.add_secure_port(address, credentials))
