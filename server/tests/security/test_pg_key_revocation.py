"""A key revoked through one server sharing a PostgreSQL store is refused by
every other at once (a notification on `mnemo_keys`, fleet/pg_signal.py),
not after `auth.key_cache_s`; also when the listening connection was lost."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import psycopg

from mnemo.v1 import admin_service_pb2 as admin_pb
from mnemo.v1 import memory_service_pb2 as pb
from mnemo_server.fleet.pg_signal import APPLICATION

from ..conftest import RunningServer
from ..pg_server import fresh_database_url
from .conftest import BOOTSTRAP, As, Keyed, fails, new_key, secure_settings, tenant_name

#: Far longer than the test: a server that only ages its cache out would still accept the key.
CACHE_S = 600
#: A bound on a hang, not a latency claim.
WITHIN_S = 10.0


def pair(
    tmp_path: Path, make_server: Callable[[Any], RunningServer]
) -> tuple[RunningServer, RunningServer, str]:
    url = fresh_database_url()
    one, two = (
        make_server(secure_settings(tmp_path / name, auth={"key_cache_s": CACHE_S}, store={"url": url}))
        for name in ("one", "two")
    )
    return one, two, url


def list_as(server: RunningServer, secret: str) -> None:
    As(server, secret).memory.ListMemories(pb.ListMemoriesRequest(scope={"user_id": "u"}), timeout=10)


def refused_within(server: RunningServer, secret: str) -> float:
    started = time.monotonic()
    while True:
        try:
            list_as(server, secret)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED
            return time.monotonic() - started
        assert time.monotonic() - started < WITHIN_S, "the other server still accepts the revoked key"
        time.sleep(0.02)


def test_a_revocation_on_one_server_holds_on_the_other_at_once(tmp_path: Path, make_server: Any) -> None:
    one, two, _ = pair(tmp_path, make_server)
    tenant = tenant_name()
    revoked, kept = new_key(one, "reader", tenant=tenant), new_key(one, "reader", tenant=tenant)
    for secret in (revoked.secret, kept.secret):
        list_as(two, secret)  # cached on two, for CACHE_S
    Keyed(one.admin, BOOTSTRAP).RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=revoked.key_id))
    assert fails(lambda: list_as(one, revoked.secret)) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    refused_within(two, revoked.secret)
    assert fails(lambda: list_as(two, revoked.secret)) == (grpc.StatusCode.UNAUTHENTICATED, "API_KEY_INVALID")
    list_as(two, kept.secret)  # only the revoked key is refused


def test_a_revocation_while_the_listeners_are_cut_off_still_holds(tmp_path: Path, make_server: Any) -> None:
    one, two, url = pair(tmp_path, make_server)
    key = new_key(one, "reader", tenant=tenant_name())
    list_as(two, key.secret)
    with psycopg.connect(url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name LIKE %s AND datname = current_database()",
            (f"{APPLICATION}-%",),
        ).fetchall()
    assert killed, "no listening connection to cut"
    Keyed(one.admin, BOOTSTRAP).RevokeApiKey(admin_pb.RevokeApiKeyRequest(id=key.key_id))
    refused_within(two, key.secret)
