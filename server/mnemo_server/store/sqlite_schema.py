"""The SQLite schema, created once per file and versioned in `meta`.

Every index below serves one access path of RecordStore; keep them in step
with the queries in sqlite.py (each index costs insert throughput).
"""

from __future__ import annotations

import sqlite3
from typing import Final

from mnemo_server import errors
from mnemo_server.store import sqlite_fts

#: 2: the keyword index (sqlite_fts.py), added to version 1 files on open.
#: 3: extraction jobs (extraction/jobs.py), added to version 2 files on open.
SCHEMA_VERSION: Final = 3

#: Extraction jobs: seq orders them (per scope, and newest first in listings).
_JOBS_DDL: Final = (
    """
    CREATE TABLE extraction_jobs (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        id             TEXT    NOT NULL UNIQUE,
        tenant         TEXT    NOT NULL,
        api_key_id     TEXT    NOT NULL,
        key_user_ids   TEXT    NOT NULL,
        key_agent_ids  TEXT    NOT NULL,
        user_id        TEXT    NOT NULL,
        agent_id       TEXT    NOT NULL,
        run_id         TEXT    NOT NULL,
        mode           TEXT    NOT NULL,
        request_id     TEXT    NOT NULL,
        fingerprint    TEXT    NOT NULL,
        messages       TEXT    NOT NULL,
        metadata       TEXT    NOT NULL,
        state          TEXT    NOT NULL,
        attempts       INTEGER NOT NULL,
        plan           TEXT,
        result         TEXT,
        revision       INTEGER NOT NULL,
        error_reason   TEXT    NOT NULL,
        error_message  TEXT    NOT NULL,
        create_time_us INTEGER NOT NULL,
        update_time_us INTEGER NOT NULL
    )
    """,
    "CREATE INDEX extraction_jobs_tenant ON extraction_jobs (tenant, seq)",
    "CREATE INDEX extraction_jobs_unfinished ON extraction_jobs (state)"
    " WHERE state IN ('pending', 'running')",
    "CREATE UNIQUE INDEX extraction_jobs_request ON extraction_jobs (tenant, request_id)"
    " WHERE request_id != ''",
)

_DDL: Final = (
    """
    CREATE TABLE meta (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    # AUTOINCREMENT: a key is the memory's id in the vector index and in
    # caches, so a deleted memory's key must never be handed to another one.
    """
    CREATE TABLE memories (
        key                   INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant                TEXT    NOT NULL,
        id                    TEXT    NOT NULL,
        user_id               TEXT    NOT NULL,
        agent_id              TEXT    NOT NULL,
        run_id                TEXT    NOT NULL,
        content               TEXT    NOT NULL,
        kind                  INTEGER NOT NULL,
        tags                  TEXT    NOT NULL,
        metadata              TEXT    NOT NULL,
        links                 TEXT    NOT NULL,
        pinned                INTEGER NOT NULL,
        embedding_model       TEXT    NOT NULL,
        content_hash          TEXT    NOT NULL,
        create_time_us        INTEGER NOT NULL,
        update_time_us        INTEGER NOT NULL,
        expire_time_us        INTEGER,
        last_retrieve_time_us INTEGER,
        version               INTEGER NOT NULL,
        revision              INTEGER NOT NULL,
        embedding             BLOB    NOT NULL,
        UNIQUE (tenant, id)
    )
    """,
    # Scope reads name any subset of user/agent/run; these three cover the
    # subsets by their leading column (the first also serves scope_counts).
    "CREATE INDEX memories_user ON memories (tenant, user_id, agent_id, run_id)",
    "CREATE INDEX memories_agent ON memories (tenant, agent_id, run_id)",
    "CREATE INDEX memories_run ON memories (tenant, run_id)",
    # Listing order (id order is served by the UNIQUE constraint's index).
    "CREATE INDEX memories_create ON memories (tenant, create_time_us, id)",
    "CREATE INDEX memories_update ON memories (tenant, update_time_us, id)",
    "CREATE INDEX memories_hash ON memories (tenant, content_hash)",
    # The sweeper's path; partial because most memories never expire.
    "CREATE INDEX memories_expire ON memories (expire_time_us) WHERE expire_time_us IS NOT NULL",
    # revision is the rowid: appends only, and one entry per change.
    """
    CREATE TABLE history (
        revision       INTEGER PRIMARY KEY,
        tenant         TEXT    NOT NULL,
        memory_id      TEXT    NOT NULL,
        version        INTEGER NOT NULL,
        change_type    INTEGER NOT NULL,
        time_us        INTEGER NOT NULL,
        api_key_id     TEXT    NOT NULL,
        before         TEXT,
        after          TEXT,
        changed_fields TEXT    NOT NULL
    )
    """,
    "CREATE INDEX history_memory ON history (tenant, memory_id, version)",
    """
    CREATE TABLE revlog (
        revision    INTEGER PRIMARY KEY,
        tenant      TEXT    NOT NULL,
        memory_id   TEXT    NOT NULL,
        key         INTEGER NOT NULL,
        change_type INTEGER NOT NULL,
        user_id     TEXT    NOT NULL,
        agent_id    TEXT    NOT NULL,
        run_id      TEXT    NOT NULL,
        time_us     INTEGER NOT NULL
    )
    """,
    # Idempotency keys: the original response of a write, replayed to a retry.
    # Held in the store (not a cache) so a restart between the write and the
    # retry cannot double-write; committed in the same transaction as the write.
    """
    CREATE TABLE idempotency (
        tenant         TEXT    NOT NULL,
        request_id     TEXT    NOT NULL,
        fingerprint    TEXT    NOT NULL,
        response       TEXT    NOT NULL,
        create_time_us INTEGER NOT NULL,
        PRIMARY KEY (tenant, request_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX idempotency_time ON idempotency (create_time_us)",
    # Which memories a stored response shows, so forgetting can purge them.
    """
    CREATE TABLE idempotency_refs (
        tenant     TEXT NOT NULL,
        memory_id  TEXT NOT NULL,
        request_id TEXT NOT NULL,
        PRIMARY KEY (tenant, memory_id, request_id)
    ) WITHOUT ROWID
    """,
    # What each tenant holds, kept by triggers in the writing transaction, so
    # a quota check is one row read that is exact across processes.
    """
    CREATE TABLE tenant_usage (
        tenant        TEXT    PRIMARY KEY,
        memory_count  INTEGER NOT NULL,
        content_bytes INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    """
    CREATE TRIGGER memories_usage_insert AFTER INSERT ON memories BEGIN
        INSERT INTO tenant_usage (tenant, memory_count, content_bytes)
        VALUES (NEW.tenant, 1, length(CAST(NEW.content AS BLOB)))
        ON CONFLICT (tenant) DO UPDATE SET
            memory_count = memory_count + 1,
            content_bytes = content_bytes + excluded.content_bytes;
    END
    """,
    """
    CREATE TRIGGER memories_usage_update AFTER UPDATE OF content ON memories
    WHEN OLD.content IS NOT NEW.content BEGIN
        UPDATE tenant_usage
        SET content_bytes = content_bytes - length(CAST(OLD.content AS BLOB))
                                          + length(CAST(NEW.content AS BLOB))
        WHERE tenant = NEW.tenant;
    END
    """,
    """
    CREATE TRIGGER memories_usage_delete AFTER DELETE ON memories BEGIN
        UPDATE tenant_usage
        SET memory_count = memory_count - 1,
            content_bytes = content_bytes - length(CAST(OLD.content AS BLOB))
        WHERE tenant = OLD.tenant;
    END
    """,
    # API keys: the secret itself is never stored, only sha256(salt || secret).
    """
    CREATE TABLE api_keys (
        id               TEXT    PRIMARY KEY,
        tenant           TEXT    NOT NULL,
        role             TEXT    NOT NULL,
        user_ids         TEXT    NOT NULL,
        agent_ids        TEXT    NOT NULL,
        display_name     TEXT    NOT NULL,
        create_time_us   INTEGER NOT NULL,
        expire_time_us   INTEGER,
        revoke_time_us   INTEGER,
        last_use_time_us INTEGER,
        salt             BLOB    NOT NULL,
        secret_hash      BLOB    NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX api_keys_tenant ON api_keys (tenant, id)",
)

#: meta names the store owns; set_meta refuses them.
RESERVED_META: Final = frozenset({"schema_version", "revision", "compacted_revision"})


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Creates the schema in an empty file, or checks an existing one's version.

    `conn` is in autocommit mode; this runs in its own IMMEDIATE transaction
    so two processes opening a new file cannot both create it.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone()
        if exists is None:
            for statement in (*_DDL, *_JOBS_DDL):
                conn.execute(statement)
            sqlite_fts.create(conn, populate=False)
            conn.executemany(
                "INSERT INTO meta (name, value) VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("revision", "0")],
            )
        else:
            row = conn.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
            found = row[0] if row else None
            if found == "1":
                _migrate_1_to_2(conn)
                found = "2"
            if found == "2":
                _migrate_2_to_3(conn)
                found = str(SCHEMA_VERSION)
            if found != str(SCHEMA_VERSION):
                raise errors.MnemoError(
                    f"the database has schema version {found}; this server understands {SCHEMA_VERSION}"
                )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Adds the keyword index and indexes every stored memory, in the
    caller's transaction: a crash leaves the file at version 1, intact."""
    sqlite_fts.create(conn, populate=True)
    conn.execute("UPDATE meta SET value = '2' WHERE name = 'schema_version'")


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Adds the extraction job table, in the caller's transaction."""
    for statement in _JOBS_DDL:
        conn.execute(statement)
    conn.execute("UPDATE meta SET value = '3' WHERE name = 'schema_version'")
