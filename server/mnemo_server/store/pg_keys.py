"""PgKeyStore: API keys in the `api_keys` table of the PostgreSQL store.

It shares nothing with PostgresStore but the database (open the store first:
it applies the schema); a small pool of its own serves every thread. Key
writes are single statements, so they need no lock: PostgreSQL orders them
with each other and with every other server on the database. A revocation
notifies KEYS_CHANNEL, so every server drops its cached keys at once.
"""

from __future__ import annotations

import builtins
import json
from typing import Any, Final

from mnemo_server.models import ApiKeyRecord
from mnemo_server.store.base import KeyStore
from mnemo_server.store.pg import KEYS_CHANNEL
from mnemo_server.store.pg_connections import PgConnections

_COLUMNS: Final = (
    "id, tenant, role, user_ids, agent_ids, display_name, create_time_us,"
    " salt, secret_hash, expire_time_us, revoke_time_us, last_use_time_us"
)


class PgKeyStore(PgConnections, KeyStore):
    def __init__(self, url: str, *, pool_size: int = 2) -> None:
        super().__init__(url, pool_size=pool_size)

    def create_key(self, record: ApiKeyRecord) -> None:
        self._exec(
            f"INSERT INTO api_keys ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                record.id,
                record.tenant,
                record.role,
                json.dumps(list(record.user_ids)),
                json.dumps(list(record.agent_ids)),
                record.display_name,
                record.create_time_us,
                record.salt,
                record.secret_hash,
                record.expire_time_us,
                record.revoke_time_us,
                record.last_use_time_us,
            ),
        )

    def get_key(self, key_id: str) -> ApiKeyRecord | None:
        row = self._one(f"SELECT {_COLUMNS} FROM api_keys WHERE id = %s", (key_id,))
        return None if row is None else _record(row)

    def list_keys(
        self, tenant: str, *, show_revoked: bool, after_id: str | None, limit: int
    ) -> builtins.list[ApiKeyRecord]:
        where = ["tenant = %s"]
        params: list[Any] = [tenant]
        if not show_revoked:
            where.append("revoke_time_us IS NULL")
        if after_id is not None:
            where.append("id > %s")
            params.append(after_id)
        rows = self._all(
            f"SELECT {_COLUMNS} FROM api_keys WHERE {' AND '.join(where)} ORDER BY id LIMIT %s",
            (*params, limit),
        )
        return [_record(row) for row in rows]

    def revoke_key(self, key_id: str, now_us: int) -> ApiKeyRecord | None:
        # One statement: the notification is delivered when the revocation commits, to
        # every server sharing the database (fleet/pg_signal.py), which drop cached keys.
        row = self._one(
            "WITH revoked AS (UPDATE api_keys SET revoke_time_us = coalesce(revoke_time_us, %s)"
            f" WHERE id = %s RETURNING {_COLUMNS})"
            " SELECT revoked.*, pg_notify(%s, revoked.id) FROM revoked",
            (now_us, key_id, KEYS_CHANNEL),
        )
        return None if row is None else _record(row)

    def touch_key(self, key_id: str, now_us: int) -> None:
        self._exec("UPDATE api_keys SET last_use_time_us = %s WHERE id = %s", (now_us, key_id))

    def close(self) -> None:
        if not self._closed:
            self._close_pool()


def _record(row: tuple[Any, ...]) -> ApiKeyRecord:
    return ApiKeyRecord(
        id=row[0],
        tenant=row[1],
        role=row[2],
        user_ids=tuple(json.loads(row[3])),
        agent_ids=tuple(json.loads(row[4])),
        display_name=row[5],
        create_time_us=row[6],
        salt=bytes(row[7]),
        secret_hash=bytes(row[8]),
        expire_time_us=row[9],
        revoke_time_us=row[10],
        last_use_time_us=row[11],
    )
