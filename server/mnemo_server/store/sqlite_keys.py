"""SqliteKeyStore: API keys in the `api_keys` table of the store's SQLite file.

Its connection is a SqliteSideConnection (sqlite_side.py): one connection
behind a lock, writes guarded against a lost data directory and a full disk.
"""

from __future__ import annotations

import builtins
import json
from typing import Any, Final

from mnemo_server.models import ApiKeyRecord
from mnemo_server.store.base import KeyStore
from mnemo_server.store.sqlite_side import SqliteSideConnection

_COLUMNS: Final = (
    "id, tenant, role, user_ids, agent_ids, display_name, create_time_us,"
    " salt, secret_hash, expire_time_us, revoke_time_us, last_use_time_us"
)


class SqliteKeyStore(SqliteSideConnection, KeyStore):
    """Keys on a side connection (sqlite_side.py) to the file at `path`;
    `guard` refuses writes once the data directory is lost."""

    def create_key(self, record: ApiKeyRecord) -> None:
        with self._writing("the API key") as conn:
            conn.execute(
                f"INSERT INTO api_keys ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else _record(row)

    def list_keys(
        self, tenant: str, *, show_revoked: bool, after_id: str | None, limit: int
    ) -> builtins.list[ApiKeyRecord]:
        where = ["tenant = ?"]
        params: list[Any] = [tenant]
        if not show_revoked:
            where.append("revoke_time_us IS NULL")
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_record(row) for row in rows]

    def revoke_key(self, key_id: str, now_us: int) -> ApiKeyRecord | None:
        with self._writing("the key's revocation") as conn:
            row = conn.execute(
                "UPDATE api_keys SET revoke_time_us = coalesce(revoke_time_us, ?) WHERE id = ?"
                f" RETURNING {_COLUMNS}",
                (now_us, key_id),
            ).fetchone()
        return None if row is None else _record(row)

    def touch_key(self, key_id: str, now_us: int) -> None:
        # Not through _writing: a full disk would log at every authenticated
        # call; the caller drops the hint quietly.
        with self._lock:
            if self._guard is not None:
                self._guard()
            self._conn.execute("UPDATE api_keys SET last_use_time_us = ? WHERE id = ?", (now_us, key_id))


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
