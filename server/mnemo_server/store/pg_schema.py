"""The PostgreSQL schema and its versioned migrations.

`MIGRATIONS[i]` takes a database from schema version i to i + 1; the
version is the one row of `schema_version`. `migrate()` applies the missing
steps, each in its own transaction, under a transaction-level advisory lock,
so servers starting together on one database apply each step exactly once
(the others wait, then find the work done). A database whose version is
newer than this code knows is refused (SchemaTooNewError): an older server
must never write into a schema it does not understand.

The tables follow the SQLite store's (sqlite_schema.py); differences:
history carries the life key and scope of its memory as columns (SQLite
reads them from the JSON image), `memories.words` is the keyword index
(pg_fts.py), and tenant_usage also counts tokens (BM25's statistics).
"""

from __future__ import annotations

from typing import Final

import psycopg

from mnemo_server import errors

#: Any constant; the advisory lock that serializes migrations.
_LOCK_ID: Final = 0x6D6E656D6F  # "mnemo"

_V1: Final = (
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
    "INSERT INTO schema_version (version) VALUES (0)",
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # The revision counter: one row, locked by every write transaction from
    # its start to its commit (pg.py explains why that orders revisions).
    "CREATE TABLE revision_counter (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one), value BIGINT NOT NULL)",
    "INSERT INTO revision_counter (value) VALUES (0)",
    # A key is the memory's id in the vector index and caches: a sequence
    # never hands one out twice (rolled-back values are skipped, not reused).
    """
    CREATE TABLE memories (
        key                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        tenant                TEXT COLLATE "C" NOT NULL,
        id                    TEXT COLLATE "C" NOT NULL,
        user_id               TEXT COLLATE "C" NOT NULL,
        agent_id              TEXT COLLATE "C" NOT NULL,
        run_id                TEXT COLLATE "C" NOT NULL,
        content               TEXT     NOT NULL,
        kind                  INTEGER  NOT NULL,
        tags                  TEXT     NOT NULL,
        metadata              TEXT     NOT NULL,
        links                 TEXT     NOT NULL,
        pinned                INTEGER  NOT NULL,
        embedding_model       TEXT     NOT NULL,
        content_hash          TEXT     NOT NULL,
        create_time_us        BIGINT   NOT NULL,
        update_time_us        BIGINT   NOT NULL,
        expire_time_us        BIGINT,
        last_retrieve_time_us BIGINT,
        version               BIGINT   NOT NULL,
        revision              BIGINT   NOT NULL,
        embedding             BYTEA    NOT NULL,
        words                 TSVECTOR NOT NULL,
        word_count            INTEGER  NOT NULL,
        CONSTRAINT memories_tenant_id UNIQUE (tenant, id)
    )
    """,
    "CREATE INDEX memories_user ON memories (tenant, user_id, agent_id, run_id)",
    "CREATE INDEX memories_agent ON memories (tenant, agent_id, run_id)",
    "CREATE INDEX memories_run ON memories (tenant, run_id)",
    "CREATE INDEX memories_create ON memories (tenant, create_time_us, id)",
    "CREATE INDEX memories_update ON memories (tenant, update_time_us, id)",
    "CREATE INDEX memories_hash ON memories (tenant, content_hash)",
    "CREATE INDEX memories_expire ON memories (expire_time_us) WHERE expire_time_us IS NOT NULL",
    "CREATE INDEX memories_words ON memories USING gin (words)",
    """
    CREATE TABLE history (
        revision       BIGINT  PRIMARY KEY,
        tenant         TEXT    NOT NULL,
        memory_id      TEXT    NOT NULL,
        life_key       BIGINT  NOT NULL,
        user_id        TEXT    NOT NULL,
        agent_id       TEXT    NOT NULL,
        run_id         TEXT    NOT NULL,
        version        BIGINT  NOT NULL,
        change_type    INTEGER NOT NULL,
        time_us        BIGINT  NOT NULL,
        api_key_id     TEXT    NOT NULL,
        before         TEXT,
        after          TEXT,
        changed_fields TEXT    NOT NULL
    )
    """,
    "CREATE INDEX history_memory ON history (tenant, memory_id, version)",
    """
    CREATE TABLE revlog (
        revision    BIGINT  PRIMARY KEY,
        tenant      TEXT    NOT NULL,
        memory_id   TEXT    NOT NULL,
        key         BIGINT  NOT NULL,
        change_type INTEGER NOT NULL,
        user_id     TEXT    NOT NULL,
        agent_id    TEXT    NOT NULL,
        run_id      TEXT    NOT NULL,
        time_us     BIGINT  NOT NULL
    )
    """,
    """
    CREATE TABLE idempotency (
        tenant         TEXT   NOT NULL,
        request_id     TEXT   NOT NULL,
        fingerprint    TEXT   NOT NULL,
        response       TEXT   NOT NULL,
        create_time_us BIGINT NOT NULL,
        PRIMARY KEY (tenant, request_id)
    )
    """,
    "CREATE INDEX idempotency_time ON idempotency (create_time_us)",
    """
    CREATE TABLE idempotency_refs (
        tenant     TEXT NOT NULL,
        memory_id  TEXT NOT NULL,
        request_id TEXT NOT NULL,
        PRIMARY KEY (tenant, memory_id, request_id)
    )
    """,
    # What each tenant holds, kept by triggers in the writing transaction
    # (quota checks), and its token count (the keyword index's BM25 length).
    """
    CREATE TABLE tenant_usage (
        tenant        TEXT   PRIMARY KEY,
        memory_count  BIGINT NOT NULL,
        content_bytes BIGINT NOT NULL,
        word_count    BIGINT NOT NULL
    )
    """,
    """
    CREATE FUNCTION memories_usage() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            UPDATE tenant_usage SET memory_count = memory_count - 1,
                content_bytes = content_bytes - octet_length(OLD.content),
                word_count = word_count - OLD.word_count
            WHERE tenant = OLD.tenant;
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
            INSERT INTO tenant_usage (tenant, memory_count, content_bytes, word_count)
            VALUES (NEW.tenant, 1, octet_length(NEW.content), NEW.word_count)
            ON CONFLICT (tenant) DO UPDATE SET memory_count = tenant_usage.memory_count + 1,
                content_bytes = tenant_usage.content_bytes + excluded.content_bytes,
                word_count = tenant_usage.word_count + excluded.word_count;
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER memories_usage_insert AFTER INSERT OR DELETE ON memories"
    " FOR EACH ROW EXECUTE FUNCTION memories_usage()",
    "CREATE TRIGGER memories_usage_update AFTER UPDATE OF content, word_count ON memories"
    " FOR EACH ROW WHEN (OLD.content IS DISTINCT FROM NEW.content OR OLD.word_count <> NEW.word_count)"
    " EXECUTE FUNCTION memories_usage()",
    """
    CREATE TABLE api_keys (
        id               TEXT   COLLATE "C" PRIMARY KEY,
        tenant           TEXT   COLLATE "C" NOT NULL,
        role             TEXT   NOT NULL,
        user_ids         TEXT   NOT NULL,
        agent_ids        TEXT   NOT NULL,
        display_name     TEXT   NOT NULL,
        create_time_us   BIGINT NOT NULL,
        expire_time_us   BIGINT,
        revoke_time_us   BIGINT,
        last_use_time_us BIGINT,
        salt             BYTEA  NOT NULL,
        secret_hash      BYTEA  NOT NULL
    )
    """,
    "CREATE INDEX api_keys_tenant ON api_keys (tenant, id)",
)

#: Extraction jobs (extraction/pg_jobs.py), shared by every server on the
#: database. The columns are the SQLite table's (sqlite_schema.py); the
#: unique index makes servers racing one request id store one job.
_V2: Final = (
    """
    CREATE TABLE extraction_jobs (
        seq            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id             TEXT   COLLATE "C" NOT NULL UNIQUE,
        tenant         TEXT   COLLATE "C" NOT NULL,
        api_key_id     TEXT   NOT NULL,
        key_user_ids   TEXT   NOT NULL,
        key_agent_ids  TEXT   NOT NULL,
        user_id        TEXT   COLLATE "C" NOT NULL,
        agent_id       TEXT   COLLATE "C" NOT NULL,
        run_id         TEXT   COLLATE "C" NOT NULL,
        mode           TEXT   NOT NULL,
        request_id     TEXT   COLLATE "C" NOT NULL,
        fingerprint    TEXT   NOT NULL,
        messages       TEXT   NOT NULL,
        metadata       TEXT   NOT NULL,
        state          TEXT   NOT NULL,
        attempts       INTEGER NOT NULL,
        plan           TEXT,
        result         TEXT,
        revision       BIGINT NOT NULL,
        error_reason   TEXT   NOT NULL,
        error_message  TEXT   NOT NULL,
        create_time_us BIGINT NOT NULL,
        update_time_us BIGINT NOT NULL
    )
    """,
    "CREATE INDEX extraction_jobs_tenant ON extraction_jobs (tenant, seq)",
    "CREATE INDEX extraction_jobs_unfinished ON extraction_jobs (state)"
    " WHERE state IN ('pending', 'running')",
    "CREATE UNIQUE INDEX extraction_jobs_request ON extraction_jobs (tenant, request_id)"
    " WHERE request_id <> ''",
)

#: Step i takes the schema from version i to i + 1 (append only; never edit
#: a released step: databases already ran it).
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (_V1, _V2)
SCHEMA_VERSION: Final = len(MIGRATIONS)

#: meta names the store owns; set_meta refuses them.
RESERVED_META: Final = frozenset({"schema_version", "revision", "compacted_revision"})


class SchemaTooNewError(errors.MnemoError):
    """The database was migrated by a newer Mnemo than this one."""


def schema_version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """The database's schema version (0: no Mnemo schema yet)."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if row is None or not row[0]:
        return 0
    found = conn.execute("SELECT version FROM schema_version").fetchone()
    return 0 if found is None else int(str(found[0]))


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> tuple[int, int]:
    """Brings the database up to SCHEMA_VERSION; returns (before, after).

    `conn` is in autocommit mode. Each step runs in a transaction that first
    takes the advisory lock and re-reads the version, so concurrent callers
    never run a step twice, and a crash leaves the database at a whole version.
    """
    before: int | None = None
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            found = schema_version(conn)
            if before is None:
                before = found
            if found > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"the PostgreSQL database has Mnemo schema version {found}; this server"
                    f" understands up to {SCHEMA_VERSION}: upgrade the server (never run an"
                    " older one on a migrated database)"
                )
            if found == SCHEMA_VERSION:
                return before, found
            for statement in MIGRATIONS[found]:
                conn.execute(statement)  # fixed DDL, no user text
            conn.execute("UPDATE schema_version SET version = %s", (found + 1,))
