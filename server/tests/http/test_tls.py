"""The HTTP side speaks TLS with the gRPC side's certificate, and with a
client CA only to clients it signed."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import start_server
from ..security.conftest import BOOTSTRAP, secure_settings
from ..security.test_tls import make_ca, make_signed

URL = "https://127.0.0.1:{port}/mnemo.v1.AdminService/GetStats"
HEADERS = {"authorization": f"Bearer {BOOTSTRAP}", "content-type": "application/json"}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1, a client certificate it
    signed and one of another CA (made by the openssl command)."""
    directory = tmp_path_factory.mktemp("http-certs")
    make_ca(directory, "ca")
    make_ca(directory, "stranger")
    make_signed(directory, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    make_signed(directory, "client", "ca", "extendedKeyUsage=clientAuth")
    make_signed(directory, "impostor", "stranger", "extendedKeyUsage=clientAuth")
    return directory


def client(certs: Path, name: str | None = None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if name is not None:
        context.load_cert_chain(str(certs / f"{name}.pem"), str(certs / f"{name}.key"))
    return httpx.Client(verify=context, timeout=30)


def tls(certs: Path, **extra: str) -> dict[str, str]:
    return {"cert_file": str(certs / "server.pem"), "key_file": str(certs / "server.key"), **extra}


def test_https_with_the_grpc_certificate(tmp_path: Path, certs: Path, embedder: Any) -> None:
    settings = secure_settings(tmp_path, tls=tls(certs), http={"address": "127.0.0.1:0"})
    server = start_server(settings, embedder)
    try:
        url = URL.format(port=server.app.http_port)
        with client(certs) as http:
            assert http.post(url, json={}, headers=HEADERS).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.post(url.replace("https://", "http://"), json={}, headers=HEADERS, timeout=10)
    finally:
        server.stop()


def test_mutual_tls_refuses_clients_without_a_signed_certificate(
    tmp_path: Path,
    certs: Path,
    embedder: Any,
) -> None:
    settings = secure_settings(
        tmp_path, tls=tls(certs, client_ca_file=str(certs / "ca.pem")), http={"address": "127.0.0.1:0"}
    )
    server = start_server(settings, embedder)
    try:
        url = URL.format(port=server.app.http_port)
        with client(certs, "client") as http:
            assert http.post(url, json={}, headers=HEADERS).status_code == 200
        for name in (None, "impostor"):
            with client(certs, name) as http, pytest.raises(httpx.HTTPError):
                http.post(url, json={}, headers=HEADERS)
    finally:
        server.stop()
