"""TLS and mutual TLS with certificates made by the openssl command: the port
speaks only TLS, and with a client CA only to clients it signed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import admin_service_pb2_grpc, memory_service_pb2_grpc
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.config import ConfigError

from ..conftest import make_settings
from .conftest import BOOTSTRAP, Keyed, secure_settings


def openssl(*args: str, cwd: Path) -> None:
    command = shutil.which("openssl")
    if command is None:
        raise RuntimeError("the TLS tests need the openssl command")
    subprocess.run([command, *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, name: str) -> None:
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
        "-keyout", f"{name}.key", "-out", f"{name}.pem", "-subj", f"/CN={name}", cwd=directory,
    )  # fmt: skip


def make_signed(directory: Path, name: str, ca: str, extensions: str) -> None:
    (directory / f"{name}.ext").write_text(extensions + "\n")
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
        "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=directory,
    )  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate it
    signed, and a client certificate of another CA."""
    directory = tmp_path_factory.mktemp("certs")
    make_ca(directory, "ca")
    make_ca(directory, "stranger")
    make_signed(directory, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    make_signed(directory, "client", "ca", "extendedKeyUsage=clientAuth")
    make_signed(directory, "impostor", "stranger", "extendedKeyUsage=clientAuth")
    return directory


def tls_channel(address: str, certs: Path, client: str | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(certs / f"{client}.key").read_bytes() if client else None,
        certificate_chain=(certs / f"{client}.pem").read_bytes() if client else None,
    )
    return grpc.secure_channel(address, credentials)


def stats(channel: grpc.Channel) -> Any:
    admin = Keyed(admin_service_pb2_grpc.AdminServiceStub(channel), BOOTSTRAP)
    return admin.GetStats(admin_pb.GetStatsRequest(), timeout=10)


def refused(channel: grpc.Channel) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as err:
        stats(channel)
    channel.close()
    return err.value.code()


def test_tls_serves_encrypted_calls_and_refuses_plaintext(
    certs: Path, tmp_path: Path, make_server: Any
) -> None:
    server = make_server(
        secure_settings(
            tmp_path, tls={"cert_file": str(certs / "server.pem"), "key_file": str(certs / "server.key")}
        )
    )
    with tls_channel(server.address, certs) as channel:
        assert stats(channel).dimension > 0
        memory = Keyed(memory_service_pb2_grpc.MemoryServiceStub(channel), BOOTSTRAP)
        memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}))
    assert refused(grpc.insecure_channel(server.address)) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate_of_the_ca(
    certs: Path, tmp_path: Path, make_server: Any
) -> None:
    server = make_server(
        secure_settings(
            tmp_path,
            tls={
                "cert_file": str(certs / "server.pem"),
                "key_file": str(certs / "server.key"),
                "client_ca_file": str(certs / "ca.pem"),
            },
        )
    )
    with tls_channel(server.address, certs, client="client") as channel:
        assert stats(channel).dimension > 0
    assert refused(tls_channel(server.address, certs)) == grpc.StatusCode.UNAVAILABLE
    assert refused(tls_channel(server.address, certs, client="impostor")) == grpc.StatusCode.UNAVAILABLE
    assert refused(grpc.insecure_channel(server.address)) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    "tls",
    [
        {"cert_file": "server.pem"},
        {"client_ca_file": "ca.pem"},
        {"cert_file": "absent.pem", "key_file": "server.key"},
    ],
)
def test_incomplete_tls_settings_are_refused_at_start(
    certs: Path, tmp_path: Path, tls: dict[str, str]
) -> None:
    with pytest.raises(ConfigError, match="tls"):
        make_settings(tmp_path, tls={k: str(certs / v) for k, v in tls.items()})
