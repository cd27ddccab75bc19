import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from mnemo.v1 import memory_pb2 as _memory_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DedupMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEDUP_MODE_UNSPECIFIED: _ClassVar[DedupMode]
    DEDUP_MODE_NONE: _ClassVar[DedupMode]
    DEDUP_MODE_EXACT: _ClassVar[DedupMode]
    DEDUP_MODE_SEMANTIC: _ClassVar[DedupMode]

class RecencyBasis(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECENCY_BASIS_UNSPECIFIED: _ClassVar[RecencyBasis]
    RECENCY_BASIS_CREATE_TIME: _ClassVar[RecencyBasis]
    RECENCY_BASIS_UPDATE_TIME: _ClassVar[RecencyBasis]
    RECENCY_BASIS_LAST_RETRIEVE_TIME: _ClassVar[RecencyBasis]

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_UNSPECIFIED: _ClassVar[SearchMode]
    SEARCH_MODE_VECTOR: _ClassVar[SearchMode]
    SEARCH_MODE_KEYWORD: _ClassVar[SearchMode]
    SEARCH_MODE_HYBRID: _ClassVar[SearchMode]

class ImportConflictPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPORT_CONFLICT_POLICY_UNSPECIFIED: _ClassVar[ImportConflictPolicy]
    IMPORT_CONFLICT_POLICY_SKIP: _ClassVar[ImportConflictPolicy]
    IMPORT_CONFLICT_POLICY_OVERWRITE: _ClassVar[ImportConflictPolicy]
    IMPORT_CONFLICT_POLICY_FAIL: _ClassVar[ImportConflictPolicy]

class ChangeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_TYPE_UNSPECIFIED: _ClassVar[ChangeType]
    CHANGE_TYPE_CREATE: _ClassVar[ChangeType]
    CHANGE_TYPE_UPDATE: _ClassVar[ChangeType]
    CHANGE_TYPE_DELETE: _ClassVar[ChangeType]
    CHANGE_TYPE_EXPIRE: _ClassVar[ChangeType]

class EventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_TYPE_UNSPECIFIED: _ClassVar[EventType]
    EVENT_TYPE_PUT: _ClassVar[EventType]
    EVENT_TYPE_DELETE: _ClassVar[EventType]
    EVENT_TYPE_EXPIRED: _ClassVar[EventType]
DEDUP_MODE_UNSPECIFIED: DedupMode
DEDUP_MODE_NONE: DedupMode
DEDUP_MODE_EXACT: DedupMode
DEDUP_MODE_SEMANTIC: DedupMode
RECENCY_BASIS_UNSPECIFIED: RecencyBasis
RECENCY_BASIS_CREATE_TIME: RecencyBasis
RECENCY_BASIS_UPDATE_TIME: RecencyBasis
RECENCY_BASIS_LAST_RETRIEVE_TIME: RecencyBasis
SEARCH_MODE_UNSPECIFIED: SearchMode
SEARCH_MODE_VECTOR: SearchMode
SEARCH_MODE_KEYWORD: SearchMode
SEARCH_MODE_HYBRID: SearchMode
IMPORT_CONFLICT_POLICY_UNSPECIFIED: ImportConflictPolicy
IMPORT_CONFLICT_POLICY_SKIP: ImportConflictPolicy
IMPORT_CONFLICT_POLICY_OVERWRITE: ImportConflictPolicy
IMPORT_CONFLICT_POLICY_FAIL: ImportConflictPolicy
CHANGE_TYPE_UNSPECIFIED: ChangeType
CHANGE_TYPE_CREATE: ChangeType
CHANGE_TYPE_UPDATE: ChangeType
CHANGE_TYPE_DELETE: ChangeType
CHANGE_TYPE_EXPIRE: ChangeType
EVENT_TYPE_UNSPECIFIED: EventType
EVENT_TYPE_PUT: EventType
EVENT_TYPE_DELETE: EventType
EVENT_TYPE_EXPIRED: EventType

class DedupPolicy(_message.Message):
    __slots__ = ("mode", "similarity_threshold", "merge")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MERGE_FIELD_NUMBER: _ClassVar[int]
    mode: DedupMode
    similarity_threshold: float
    merge: bool
    def __init__(self, mode: _Optional[_Union[DedupMode, str]] = ..., similarity_threshold: _Optional[float] = ..., merge: _Optional[bool] = ...) -> None: ...

class CreateMemoryRequest(_message.Message):
    __slots__ = ("memory", "request_id", "dedup", "ttl")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    memory: _memory_pb2.Memory
    request_id: str
    dedup: DedupPolicy
    ttl: _duration_pb2.Duration
    def __init__(self, memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., request_id: _Optional[str] = ..., dedup: _Optional[_Union[DedupPolicy, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateMemoryResponse(_message.Message):
    __slots__ = ("memory", "deduplicated", "similarity")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    DEDUPLICATED_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    memory: _memory_pb2.Memory
    deduplicated: bool
    similarity: float
    def __init__(self, memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., deduplicated: _Optional[bool] = ..., similarity: _Optional[float] = ...) -> None: ...

class GetMemoryRequest(_message.Message):
    __slots__ = ("id", "read_mask", "min_revision")
    ID_FIELD_NUMBER: _ClassVar[int]
    READ_MASK_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    id: str
    read_mask: _field_mask_pb2.FieldMask
    min_revision: int
    def __init__(self, id: _Optional[str] = ..., read_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., min_revision: _Optional[int] = ...) -> None: ...

class GetMemoryResponse(_message.Message):
    __slots__ = ("memory", "revision")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    memory: _memory_pb2.Memory
    revision: int
    def __init__(self, memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class UpdateMemoryRequest(_message.Message):
    __slots__ = ("memory", "update_mask", "etag", "request_id", "ttl")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    memory: _memory_pb2.Memory
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    request_id: str
    ttl: _duration_pb2.Duration
    def __init__(self, memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class UpdateMemoryResponse(_message.Message):
    __slots__ = ("memory",)
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    memory: _memory_pb2.Memory
    def __init__(self, memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ...) -> None: ...

class DeleteMemoryRequest(_message.Message):
    __slots__ = ("id", "etag", "request_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    etag: str
    request_id: str
    def __init__(self, id: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteMemoryResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class ListMemoriesRequest(_message.Message):
    __slots__ = ("scope", "filter", "order_by", "page_size", "page_token", "read_mask", "min_revision")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    READ_MASK_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    scope: _memory_pb2.Scope
    filter: str
    order_by: str
    page_size: int
    page_token: str
    read_mask: _field_mask_pb2.FieldMask
    min_revision: int
    def __init__(self, scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., read_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., min_revision: _Optional[int] = ...) -> None: ...

class ListMemoriesResponse(_message.Message):
    __slots__ = ("memories", "next_page_token", "revision")
    MEMORIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    memories: _containers.RepeatedCompositeFieldContainer[_memory_pb2.Memory]
    next_page_token: str
    revision: int
    def __init__(self, memories: _Optional[_Iterable[_Union[_memory_pb2.Memory, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class SearchMemoriesRequest(_message.Message):
    __slots__ = ("query", "vector", "scope", "filter", "top_k", "min_score", "include_embedding", "mode", "rrf_k", "explain", "recency_half_life_seconds", "recency_basis", "recency_weight", "importance_key", "importance_weight", "pin_boost", "rerank", "min_revision")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    MIN_SCORE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    RECENCY_HALF_LIFE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RECENCY_BASIS_FIELD_NUMBER: _ClassVar[int]
    RECENCY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_KEY_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    PIN_BOOST_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    MIN_REVISION_FIELD_NUMBER: _ClassVar[int]
    query: str
    vector: _containers.RepeatedScalarFieldContainer[float]
    scope: _memory_pb2.Scope
    filter: str
    top_k: int
    min_score: float
    include_embedding: bool
    mode: SearchMode
    rrf_k: int
    explain: bool
    recency_half_life_seconds: float
    recency_basis: RecencyBasis
    recency_weight: float
    importance_key: str
    importance_weight: float
    pin_boost: float
    rerank: bool
    min_revision: int
    def __init__(self, query: _Optional[str] = ..., vector: _Optional[_Iterable[float]] = ..., scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., filter: _Optional[str] = ..., top_k: _Optional[int] = ..., min_score: _Optional[float] = ..., include_embedding: _Optional[bool] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., rrf_k: _Optional[int] = ..., explain: _Optional[bool] = ..., recency_half_life_seconds: _Optional[float] = ..., recency_basis: _Optional[_Union[RecencyBasis, str]] = ..., recency_weight: _Optional[float] = ..., importance_key: _Optional[str] = ..., importance_weight: _Optional[float] = ..., pin_boost: _Optional[float] = ..., rerank: _Optional[bool] = ..., min_revision: _Optional[int] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("memory", "score", "explanation")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    memory: _memory_pb2.Memory
    score: float
    explanation: HitExplanation
    def __init__(self, memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., score: _Optional[float] = ..., explanation: _Optional[_Union[HitExplanation, _Mapping]] = ...) -> None: ...

class HitExplanation(_message.Message):
    __slots__ = ("vector_score", "vector_rank", "keyword_score", "keyword_rank", "fused_score", "base_score", "recency_factor", "age_seconds", "importance", "importance_factor", "pin_factor", "reranked", "rerank_score")
    VECTOR_SCORE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_RANK_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_SCORE_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_RANK_FIELD_NUMBER: _ClassVar[int]
    FUSED_SCORE_FIELD_NUMBER: _ClassVar[int]
    BASE_SCORE_FIELD_NUMBER: _ClassVar[int]
    RECENCY_FACTOR_FIELD_NUMBER: _ClassVar[int]
    AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FACTOR_FIELD_NUMBER: _ClassVar[int]
    PIN_FACTOR_FIELD_NUMBER: _ClassVar[int]
    RERANKED_FIELD_NUMBER: _ClassVar[int]
    RERANK_SCORE_FIELD_NUMBER: _ClassVar[int]
    vector_score: float
    vector_rank: int
    keyword_score: float
    keyword_rank: int
    fused_score: float
    base_score: float
    recency_factor: float
    age_seconds: float
    importance: float
    importance_factor: float
    pin_factor: float
    reranked: bool
    rerank_score: float
    def __init__(self, vector_score: _Optional[float] = ..., vector_rank: _Optional[int] = ..., keyword_score: _Optional[float] = ..., keyword_rank: _Optional[int] = ..., fused_score: _Optional[float] = ..., base_score: _Optional[float] = ..., recency_factor: _Optional[float] = ..., age_seconds: _Optional[float] = ..., importance: _Optional[float] = ..., importance_factor: _Optional[float] = ..., pin_factor: _Optional[float] = ..., reranked: _Optional[bool] = ..., rerank_score: _Optional[float] = ...) -> None: ...

class SearchMemoriesResponse(_message.Message):
    __slots__ = ("hits", "embedding_model", "revision")
    HITS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    embedding_model: str
    revision: int
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., embedding_model: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class BatchSearchMemoriesRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[SearchMemoriesRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[SearchMemoriesRequest, _Mapping]]] = ...) -> None: ...

class BatchSearchMemoriesResponse(_message.Message):
    __slots__ = ("results", "revision")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchMemoriesResponse]
    revision: int
    def __init__(self, results: _Optional[_Iterable[_Union[SearchMemoriesResponse, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class StreamSearchMemoriesRequest(_message.Message):
    __slots__ = ("query_id", "search")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    search: SearchMemoriesRequest
    def __init__(self, query_id: _Optional[str] = ..., search: _Optional[_Union[SearchMemoriesRequest, _Mapping]] = ...) -> None: ...

class StreamSearchMemoriesResponse(_message.Message):
    __slots__ = ("query_id", "result", "error")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    result: SearchMemoriesResponse
    error: _status_pb2.Status
    def __init__(self, query_id: _Optional[str] = ..., result: _Optional[_Union[SearchMemoriesResponse, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class WriteOperation(_message.Message):
    __slots__ = ("create", "update", "delete")
    CREATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    create: CreateMemoryRequest
    update: UpdateMemoryRequest
    delete: DeleteMemoryRequest
    def __init__(self, create: _Optional[_Union[CreateMemoryRequest, _Mapping]] = ..., update: _Optional[_Union[UpdateMemoryRequest, _Mapping]] = ..., delete: _Optional[_Union[DeleteMemoryRequest, _Mapping]] = ...) -> None: ...

class WriteResult(_message.Message):
    __slots__ = ("status", "create", "update", "delete")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.Status
    create: CreateMemoryResponse
    update: UpdateMemoryResponse
    delete: DeleteMemoryResponse
    def __init__(self, status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., create: _Optional[_Union[CreateMemoryResponse, _Mapping]] = ..., update: _Optional[_Union[UpdateMemoryResponse, _Mapping]] = ..., delete: _Optional[_Union[DeleteMemoryResponse, _Mapping]] = ...) -> None: ...

class BatchWriteMemoriesRequest(_message.Message):
    __slots__ = ("operations", "atomic", "request_id")
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    ATOMIC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[WriteOperation]
    atomic: bool
    request_id: str
    def __init__(self, operations: _Optional[_Iterable[_Union[WriteOperation, _Mapping]]] = ..., atomic: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchWriteMemoriesResponse(_message.Message):
    __slots__ = ("results", "revision")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[WriteResult]
    revision: int
    def __init__(self, results: _Optional[_Iterable[_Union[WriteResult, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class ExportHeader(_message.Message):
    __slots__ = ("format_version", "embedding_model", "dimension", "export_time", "revision")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    EXPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    embedding_model: str
    dimension: int
    export_time: _timestamp_pb2.Timestamp
    revision: int
    def __init__(self, format_version: _Optional[int] = ..., embedding_model: _Optional[str] = ..., dimension: _Optional[int] = ..., export_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class ExportMemoriesRequest(_message.Message):
    __slots__ = ("scope", "filter", "omit_embeddings")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    OMIT_EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    scope: _memory_pb2.Scope
    filter: str
    omit_embeddings: bool
    def __init__(self, scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., filter: _Optional[str] = ..., omit_embeddings: _Optional[bool] = ...) -> None: ...

class ExportMemoriesResponse(_message.Message):
    __slots__ = ("header", "memory")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    header: ExportHeader
    memory: _memory_pb2.Memory
    def __init__(self, header: _Optional[_Union[ExportHeader, _Mapping]] = ..., memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ...) -> None: ...

class ImportOptions(_message.Message):
    __slots__ = ("on_conflict", "force_reembed")
    ON_CONFLICT_FIELD_NUMBER: _ClassVar[int]
    FORCE_REEMBED_FIELD_NUMBER: _ClassVar[int]
    on_conflict: ImportConflictPolicy
    force_reembed: bool
    def __init__(self, on_conflict: _Optional[_Union[ImportConflictPolicy, str]] = ..., force_reembed: _Optional[bool] = ...) -> None: ...

class ImportMemoriesRequest(_message.Message):
    __slots__ = ("options", "header", "memory")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    options: ImportOptions
    header: ExportHeader
    memory: _memory_pb2.Memory
    def __init__(self, options: _Optional[_Union[ImportOptions, _Mapping]] = ..., header: _Optional[_Union[ExportHeader, _Mapping]] = ..., memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ...) -> None: ...

class ImportFailure(_message.Message):
    __slots__ = ("index", "memory_id", "status")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    index: int
    memory_id: str
    status: _status_pb2.Status
    def __init__(self, index: _Optional[int] = ..., memory_id: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class ImportMemoriesResponse(_message.Message):
    __slots__ = ("imported_count", "skipped_count", "reembedded_count", "failures", "failed_count")
    IMPORTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REEMBEDDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    FAILED_COUNT_FIELD_NUMBER: _ClassVar[int]
    imported_count: int
    skipped_count: int
    reembedded_count: int
    failures: _containers.RepeatedCompositeFieldContainer[ImportFailure]
    failed_count: int
    def __init__(self, imported_count: _Optional[int] = ..., skipped_count: _Optional[int] = ..., reembedded_count: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[ImportFailure, _Mapping]]] = ..., failed_count: _Optional[int] = ...) -> None: ...

class DeleteMemoriesRequest(_message.Message):
    __slots__ = ("scope", "filter", "dry_run", "request_id")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    scope: _memory_pb2.Scope
    filter: str
    dry_run: bool
    request_id: str
    def __init__(self, scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., filter: _Optional[str] = ..., dry_run: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteMemoriesResponse(_message.Message):
    __slots__ = ("deleted_count", "memory_ids", "revision")
    DELETED_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_IDS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    deleted_count: int
    memory_ids: _containers.RepeatedScalarFieldContainer[str]
    revision: int
    def __init__(self, deleted_count: _Optional[int] = ..., memory_ids: _Optional[_Iterable[str]] = ..., revision: _Optional[int] = ...) -> None: ...

class MemoryVersion(_message.Message):
    __slots__ = ("memory_id", "version", "revision", "change_type", "change_time", "api_key_id", "before", "after", "changed_fields")
    MEMORY_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    API_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    memory_id: str
    version: int
    revision: int
    change_type: ChangeType
    change_time: _timestamp_pb2.Timestamp
    api_key_id: str
    before: _memory_pb2.Memory
    after: _memory_pb2.Memory
    changed_fields: _field_mask_pb2.FieldMask
    def __init__(self, memory_id: _Optional[str] = ..., version: _Optional[int] = ..., revision: _Optional[int] = ..., change_type: _Optional[_Union[ChangeType, str]] = ..., change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., api_key_id: _Optional[str] = ..., before: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., after: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., changed_fields: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class GetMemoryHistoryRequest(_message.Message):
    __slots__ = ("id", "page_size", "page_token")
    ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    id: str
    page_size: int
    page_token: str
    def __init__(self, id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetMemoryHistoryResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[MemoryVersion]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[MemoryVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MemoryEvent(_message.Message):
    __slots__ = ("type", "revision", "memory_id", "memory", "event_time")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ID_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    type: EventType
    revision: int
    memory_id: str
    memory: _memory_pb2.Memory
    event_time: _timestamp_pb2.Timestamp
    def __init__(self, type: _Optional[_Union[EventType, str]] = ..., revision: _Optional[int] = ..., memory_id: _Optional[str] = ..., memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WatchMemoriesRequest(_message.Message):
    __slots__ = ("scope", "filter", "start_revision", "event_types", "progress_interval")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    START_REVISION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    scope: _memory_pb2.Scope
    filter: str
    start_revision: int
    event_types: _containers.RepeatedScalarFieldContainer[EventType]
    progress_interval: _duration_pb2.Duration
    def __init__(self, scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., filter: _Optional[str] = ..., start_revision: _Optional[int] = ..., event_types: _Optional[_Iterable[_Union[EventType, str]]] = ..., progress_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WatchMemoriesResponse(_message.Message):
    __slots__ = ("events", "revision", "progress_notification")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[MemoryEvent]
    revision: int
    progress_notification: bool
    def __init__(self, events: _Optional[_Iterable[_Union[MemoryEvent, _Mapping]]] = ..., revision: _Optional[int] = ..., progress_notification: _Optional[bool] = ...) -> None: ...
