"""`MnemoVectorStore`: mem0's `VectorStoreBase` on a Mnemo server, over gRPC.

mem0 embeds with its own embedder and hands this store vectors, payloads and
filter dicts; the store keeps them as Mnemo memories (see `payload` for the
mapping and `filters` for the filter translation). A mem0 "collection" is a
metadata tag (`mem0_collection`) inside the tenant of the API key: Mnemo has no
collections of its own, and the tenant, never a request field, decides whose
memories a call can see.
"""

from __future__ import annotations

import builtins
import contextlib
import itertools
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mem0.vector_stores.base import VectorStoreBase

from mnemo import types
from mnemo._core.requests import WriteOp
from mnemo.client import MnemoClient
from mnemo.errors import NotFoundError
from mnemo.integrations.mem0.filters import COLLECTION_KEY, Translated, translate
from mnemo.integrations.mem0.payload import (
    PayloadError,
    collection_of,
    content_of,
    metadata_of,
    payload_of,
    scope_of,
)

logger = logging.getLogger(__name__)

# Below the server's default batch limits (1000 writes, 256 searches per call).
WRITE_CHUNK = 500
SEARCH_CHUNK = 256
# The largest top_k and page size a Mnemo call takes.
MAX_TOP_K = 1000

T = TypeVar("T")


@dataclass
class OutputData:
    """One record as mem0 reads it: `id`, `score` (None outside searches) and `payload`."""

    id: str
    score: float | None
    payload: dict[str, Any]


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _vector(vectors: Any) -> builtins.list[float]:
    """mem0 passes one query vector, sometimes wrapped in a list of one."""
    values = list(vectors)
    if len(values) == 1 and hasattr(values[0], "__len__"):
        values = list(values[0])
    return [float(v) for v in values]


class MnemoVectorStore(VectorStoreBase):  # type: ignore[misc]
    """A mem0 vector store that keeps its records in a Mnemo server.

    Args:
        collection_name: The mem0 collection; memories are tagged with it and
            every read is confined to it.
        address: host:port of the server; `MNEMO_ADDRESS`, else "localhost:50051".
        api_key: The key whose tenant holds the memories; `MNEMO_API_KEY` when not given.
        tls: Use TLS (implied by `ca_file`).
        ca_file: PEM root certificates to trust instead of the system's.
        timeout: Deadline of each call in seconds.
        embedding_model: The name recorded as the model of mem0's vectors
            (Mnemo's `embedding_model`); "client" when not given. Give the
            server's model name when mem0 embeds with the same model, so that
            Mnemo's own re-embedding leaves these memories alone.
        embedding_model_dims: The dimension of mem0's vectors; it must equal
            the server's (EMBEDDING_DIMENSION_MISMATCH otherwise).
    """

    def __init__(
        self,
        collection_name: str = "mem0",
        address: str | None = None,
        api_key: str | None = None,
        tls: bool | None = None,
        ca_file: str | None = None,
        timeout: float = 30.0,
        embedding_model: str | None = None,
        embedding_model_dims: int | None = None,
    ) -> None:
        self.collection_name = collection_name
        self.embedding_model = embedding_model
        if embedding_model_dims is not None:
            self.embedding_model_dims = embedding_model_dims
        self.client = MnemoClient(address, api_key=api_key, tls=tls, ca_file=ca_file, timeout=timeout)

    # -- helpers ------------------------------------------------------------------

    def _where(self, filters: Mapping[str, Any] | None) -> Translated:
        return translate(filters, self.collection_name)

    def _output(self, memory: types.Memory, score: float | None = None) -> OutputData:
        return OutputData(id=memory.id, score=score, payload=payload_of(memory))

    def _own(self, vector_id: str) -> types.Memory | None:
        """The memory of this collection with that id, or None."""
        try:
            memory = self.client.get(vector_id)
        except NotFoundError:
            return None
        return memory if collection_of(memory) == self.collection_name else None

    # -- VectorStoreBase ----------------------------------------------------------

    def create_col(self, name: str, vector_size: int | None = None, distance: str | None = None) -> Any:
        """Switches to collection `name`. Mnemo needs nothing created: a collection
        exists once a memory carries its tag. Mnemo always ranks by cosine similarity."""
        if distance not in (None, "cosine"):
            raise ValueError(f"Mnemo ranks by cosine similarity; distance {distance!r} is not available")
        self.collection_name = name
        return self

    def insert(
        self,
        vectors: Sequence[Sequence[float]],
        payloads: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> None:
        """Stores records, each batch of up to 500 atomically (all or none).

        Raises:
            PayloadError: a payload without `data` or without a scope id.
            MnemoError: the server refused a record (the first refusal is raised).
        """
        if payloads is None or len(payloads) != len(vectors):
            raise PayloadError("insert needs one payload (with 'data' and a scope id) per vector")
        if ids is None:
            ids = [str(uuid.uuid4()) for _ in vectors]
        if len(ids) != len(vectors):
            raise ValueError("insert needs as many ids as vectors")
        ops = [
            WriteOp.create(
                content_of(payload),
                id=id,
                metadata=metadata_of(payload, self.collection_name),
                embedding=[float(v) for v in vector],
                embedding_model=self.embedding_model,
                **scope_of(payload),
            )
            for id, vector, payload in zip(ids, vectors, payloads, strict=True)
        ]
        for batch in _chunks(ops, WRITE_CHUNK):
            result = self.client.batch_write(batch, atomic=True)
            failed = next((r.error for r in result.results if r.error is not None), None)
            if failed is not None:
                raise failed

    def search(
        self, query: str, vectors: Any, top_k: int = 5, filters: Mapping[str, Any] | None = None
    ) -> builtins.list[OutputData]:
        """The records nearest to a vector, best first; `score` is the cosine similarity."""
        if top_k <= 0:
            return []
        where = self._where(filters)
        result = self.client.search(
            vector=_vector(vectors),
            filter=where.expression,
            top_k=min(top_k, MAX_TOP_K),
            user_id=where.user_id,
            agent_id=where.agent_id,
            run_id=where.run_id,
        )
        return [self._output(hit.memory, hit.score) for hit in result.hits]

    def keyword_search(
        self, query: str, top_k: int = 5, filters: Mapping[str, Any] | None = None
    ) -> builtins.list[OutputData]:
        """The records containing the words of `query`, ranked by BM25 (Mnemo's keyword mode)."""
        if top_k <= 0 or not query or not query.strip():
            return []
        where = self._where(filters)
        result = self.client.search(
            query,
            mode="keyword",
            filter=where.expression,
            top_k=min(top_k, MAX_TOP_K),
            user_id=where.user_id,
            agent_id=where.agent_id,
            run_id=where.run_id,
        )
        return [self._output(hit.memory, hit.score) for hit in result.hits]

    def search_batch(
        self,
        queries: Sequence[str],
        vectors_list: Sequence[Any],
        top_k: int = 1,
        filters: Mapping[str, Any] | None = None,
    ) -> builtins.list[builtins.list[OutputData]]:
        """Many vector searches in one call per 256 (BatchSearchMemories), in order."""
        if len(queries) != len(vectors_list):
            raise ValueError("search_batch needs one vector per query")
        if top_k <= 0:
            return [[] for _ in vectors_list]
        where = self._where(filters)
        results: builtins.list[builtins.list[OutputData]] = []
        for chunk in _chunks(list(vectors_list), SEARCH_CHUNK):
            answers = self.client.batch_search(
                [types.SearchQuery(vector=_vector(v)) for v in chunk],
                filter=where.expression,
                top_k=min(top_k, MAX_TOP_K),
                user_id=where.user_id,
                agent_id=where.agent_id,
                run_id=where.run_id,
            )
            results.extend([self._output(h.memory, h.score) for h in a.hits] for a in answers)
        return results

    def delete(self, vector_id: str) -> None:
        """Deletes a record; a record that is not there (or is another collection's) is left alone."""
        memory = self._own(vector_id)
        if memory is None:
            logger.warning("mem0 record %s not found in collection %s", vector_id, self.collection_name)
            return
        with contextlib.suppress(NotFoundError):  # deleted meanwhile: the outcome asked for
            self.client.delete(vector_id, etag=memory.etag)

    def update(
        self,
        vector_id: str,
        vector: Sequence[float] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        """Replaces a record's vector and/or payload, only if it did not change meanwhile (etag).

        Raises:
            ValueError: no such record in this collection.
            PayloadError: the payload moves the record to another scope, or changes
                its text without a new vector.
        """
        memory = self._own(vector_id)
        if memory is None:
            raise ValueError(f"mem0 record {vector_id} not found in collection {self.collection_name}")
        changes: dict[str, Any] = {}
        if payload is not None:
            current = {k: getattr(memory, k) for k in ("user_id", "agent_id", "run_id") if getattr(memory, k)}
            if scope_of(payload) != current:
                raise PayloadError("user_id, agent_id and run_id of a record cannot change")
            content = content_of(payload)
            if content != memory.content:
                if vector is None:
                    raise PayloadError("changing a record's 'data' needs its new vector")
                changes["content"] = content
            changes["metadata"] = metadata_of(payload, self.collection_name)
        if vector is not None:
            changes["embedding"] = [float(v) for v in vector]
            changes["embedding_model"] = self.embedding_model
        if changes:
            self.client.update(vector_id, etag=memory.etag, **changes)

    def get(self, vector_id: str) -> OutputData | None:
        """The record with that id in this collection, or None."""
        memory = self._own(vector_id)
        return None if memory is None else self._output(memory)

    def list_cols(self) -> builtins.list[str]:
        """The collections that hold at least one record in this tenant (reads every record's tag)."""
        seen: dict[str, None] = {}
        for memory in self.client.iter_memories(
            filter=f"metadata.{COLLECTION_KEY}:*", page_size=MAX_TOP_K, read_mask=["metadata"]
        ):
            name = collection_of(memory)
            if name is not None:
                seen.setdefault(name)
        return list(seen)

    def delete_col(self) -> None:
        """Deletes every record of this collection, with its Mnemo history."""
        self.client.delete_memories(filter=self._where(None).expression)

    def col_info(self) -> dict[str, Any]:
        """The collection's name and how many records it holds."""
        count = sum(
            1
            for _ in self.client.iter_memories(
                filter=self._where(None).expression, page_size=MAX_TOP_K, read_mask=["id"]
            )
        )
        return {"name": self.collection_name, "count": count}

    def list(
        self, filters: Mapping[str, Any] | None = None, top_k: int | None = None
    ) -> builtins.list[builtins.list[OutputData]]:
        """Up to `top_k` records (100 when not given), newest first, as mem0's `[records]`."""
        limit = 100 if top_k is None else top_k
        if limit <= 0:
            return [[]]
        where = self._where(filters)
        memories = self.client.iter_memories(
            filter=where.expression,
            page_size=min(limit, MAX_TOP_K),
            user_id=where.user_id,
            agent_id=where.agent_id,
            run_id=where.run_id,
        )
        return [[self._output(m) for m in itertools.islice(memories, limit)]]

    def reset(self) -> None:
        """Deletes every record of this collection (which is then empty and ready)."""
        self.delete_col()

    def close(self) -> None:
        """Closes the connection to the server."""
        self.client.close()


__all__ = ["MnemoVectorStore", "OutputData"]
