import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mnemo.v1 import memory_pb2 as _memory_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IndexKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_KIND_UNSPECIFIED: _ClassVar[IndexKind]
    INDEX_KIND_FLAT: _ClassVar[IndexKind]
    INDEX_KIND_HNSW: _ClassVar[IndexKind]
    INDEX_KIND_IVF: _ClassVar[IndexKind]

class EvictionOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVICTION_ORDER_UNSPECIFIED: _ClassVar[EvictionOrder]
    EVICTION_ORDER_OLDEST: _ClassVar[EvictionOrder]
    EVICTION_ORDER_LEAST_RECENTLY_RETRIEVED: _ClassVar[EvictionOrder]

class InconsistencyKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INCONSISTENCY_KIND_UNSPECIFIED: _ClassVar[InconsistencyKind]
    INCONSISTENCY_KIND_MISSING_FROM_INDEX: _ClassVar[InconsistencyKind]
    INCONSISTENCY_KIND_ORPHAN_IN_INDEX: _ClassVar[InconsistencyKind]
    INCONSISTENCY_KIND_STALE_IN_INDEX: _ClassVar[InconsistencyKind]
    INCONSISTENCY_KIND_STALE_IN_CACHE: _ClassVar[InconsistencyKind]

class ApiKeyRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    API_KEY_ROLE_UNSPECIFIED: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_READER: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_WRITER: _ClassVar[ApiKeyRole]
    API_KEY_ROLE_ADMIN: _ClassVar[ApiKeyRole]
INDEX_KIND_UNSPECIFIED: IndexKind
INDEX_KIND_FLAT: IndexKind
INDEX_KIND_HNSW: IndexKind
INDEX_KIND_IVF: IndexKind
EVICTION_ORDER_UNSPECIFIED: EvictionOrder
EVICTION_ORDER_OLDEST: EvictionOrder
EVICTION_ORDER_LEAST_RECENTLY_RETRIEVED: EvictionOrder
INCONSISTENCY_KIND_UNSPECIFIED: InconsistencyKind
INCONSISTENCY_KIND_MISSING_FROM_INDEX: InconsistencyKind
INCONSISTENCY_KIND_ORPHAN_IN_INDEX: InconsistencyKind
INCONSISTENCY_KIND_STALE_IN_INDEX: InconsistencyKind
INCONSISTENCY_KIND_STALE_IN_CACHE: InconsistencyKind
API_KEY_ROLE_UNSPECIFIED: ApiKeyRole
API_KEY_ROLE_READER: ApiKeyRole
API_KEY_ROLE_WRITER: ApiKeyRole
API_KEY_ROLE_ADMIN: ApiKeyRole

class GetStatsRequest(_message.Message):
    __slots__ = ("scope", "scope_limit")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    scope: _memory_pb2.Scope
    scope_limit: int
    def __init__(self, scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., scope_limit: _Optional[int] = ...) -> None: ...

class ScopeCount(_message.Message):
    __slots__ = ("scope", "memory_count")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    scope: _memory_pb2.Scope
    memory_count: int
    def __init__(self, scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., memory_count: _Optional[int] = ...) -> None: ...

class TenantStats(_message.Message):
    __slots__ = ("tenant", "memory_count", "content_bytes", "scopes")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    memory_count: int
    content_bytes: int
    scopes: _containers.RepeatedCompositeFieldContainer[ScopeCount]
    def __init__(self, tenant: _Optional[str] = ..., memory_count: _Optional[int] = ..., content_bytes: _Optional[int] = ..., scopes: _Optional[_Iterable[_Union[ScopeCount, _Mapping]]] = ...) -> None: ...

class IndexShardStats(_message.Message):
    __slots__ = ("shard_id", "kind", "vector_count", "dimension", "memory_bytes", "snapshot_revision", "kind_reason")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_REVISION_FIELD_NUMBER: _ClassVar[int]
    KIND_REASON_FIELD_NUMBER: _ClassVar[int]
    shard_id: str
    kind: IndexKind
    vector_count: int
    dimension: int
    memory_bytes: int
    snapshot_revision: int
    kind_reason: str
    def __init__(self, shard_id: _Optional[str] = ..., kind: _Optional[_Union[IndexKind, str]] = ..., vector_count: _Optional[int] = ..., dimension: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., snapshot_revision: _Optional[int] = ..., kind_reason: _Optional[str] = ...) -> None: ...

class CacheStats(_message.Message):
    __slots__ = ("name", "backend", "hits", "misses", "errors", "hit_rate", "bytes", "state")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    HIT_RATE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: str
    hits: int
    misses: int
    errors: int
    hit_rate: float
    bytes: int
    state: str
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[str] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., errors: _Optional[int] = ..., hit_rate: _Optional[float] = ..., bytes: _Optional[int] = ..., state: _Optional[str] = ...) -> None: ...

class RetentionPolicy(_message.Message):
    __slots__ = ("tenant", "scope", "max_age", "max_count", "eviction_order")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    MAX_AGE_FIELD_NUMBER: _ClassVar[int]
    MAX_COUNT_FIELD_NUMBER: _ClassVar[int]
    EVICTION_ORDER_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    scope: _memory_pb2.Scope
    max_age: _duration_pb2.Duration
    max_count: int
    eviction_order: EvictionOrder
    def __init__(self, tenant: _Optional[str] = ..., scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., max_age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., max_count: _Optional[int] = ..., eviction_order: _Optional[_Union[EvictionOrder, str]] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("tenants", "shards", "caches", "revision", "oldest_revision", "embedding_model", "dimension", "retention_policies", "server_version")
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    CACHES_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    OLDEST_REVISION_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    RETENTION_POLICIES_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[TenantStats]
    shards: _containers.RepeatedCompositeFieldContainer[IndexShardStats]
    caches: _containers.RepeatedCompositeFieldContainer[CacheStats]
    revision: int
    oldest_revision: int
    embedding_model: str
    dimension: int
    retention_policies: _containers.RepeatedCompositeFieldContainer[RetentionPolicy]
    server_version: str
    def __init__(self, tenants: _Optional[_Iterable[_Union[TenantStats, _Mapping]]] = ..., shards: _Optional[_Iterable[_Union[IndexShardStats, _Mapping]]] = ..., caches: _Optional[_Iterable[_Union[CacheStats, _Mapping]]] = ..., revision: _Optional[int] = ..., oldest_revision: _Optional[int] = ..., embedding_model: _Optional[str] = ..., dimension: _Optional[int] = ..., retention_policies: _Optional[_Iterable[_Union[RetentionPolicy, _Mapping]]] = ..., server_version: _Optional[str] = ...) -> None: ...

class CheckConsistencyRequest(_message.Message):
    __slots__ = ("repair",)
    REPAIR_FIELD_NUMBER: _ClassVar[int]
    repair: bool
    def __init__(self, repair: _Optional[bool] = ...) -> None: ...

class Inconsistency(_message.Message):
    __slots__ = ("kind", "memory_id", "tenant")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    kind: InconsistencyKind
    memory_id: str
    tenant: str
    def __init__(self, kind: _Optional[_Union[InconsistencyKind, str]] = ..., memory_id: _Optional[str] = ..., tenant: _Optional[str] = ...) -> None: ...

class CheckConsistencyResponse(_message.Message):
    __slots__ = ("consistent", "store_count", "index_count", "inconsistencies", "repaired_count")
    CONSISTENT_FIELD_NUMBER: _ClassVar[int]
    STORE_COUNT_FIELD_NUMBER: _ClassVar[int]
    INDEX_COUNT_FIELD_NUMBER: _ClassVar[int]
    INCONSISTENCIES_FIELD_NUMBER: _ClassVar[int]
    REPAIRED_COUNT_FIELD_NUMBER: _ClassVar[int]
    consistent: bool
    store_count: int
    index_count: int
    inconsistencies: _containers.RepeatedCompositeFieldContainer[Inconsistency]
    repaired_count: int
    def __init__(self, consistent: _Optional[bool] = ..., store_count: _Optional[int] = ..., index_count: _Optional[int] = ..., inconsistencies: _Optional[_Iterable[_Union[Inconsistency, _Mapping]]] = ..., repaired_count: _Optional[int] = ...) -> None: ...

class CreateSnapshotRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateSnapshotResponse(_message.Message):
    __slots__ = ("revision", "snapshot_time", "bytes", "shard_count")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    revision: int
    snapshot_time: _timestamp_pb2.Timestamp
    bytes: int
    shard_count: int
    def __init__(self, revision: _Optional[int] = ..., snapshot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bytes: _Optional[int] = ..., shard_count: _Optional[int] = ...) -> None: ...

class ReembedMemoriesRequest(_message.Message):
    __slots__ = ("scope", "filter", "force", "dry_run")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    scope: _memory_pb2.Scope
    filter: str
    force: bool
    dry_run: bool
    def __init__(self, scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., filter: _Optional[str] = ..., force: _Optional[bool] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class ReembedMemoriesResponse(_message.Message):
    __slots__ = ("total_count", "reembedded_count", "done", "embedding_model")
    TOTAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    REEMBEDDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_MODEL_FIELD_NUMBER: _ClassVar[int]
    total_count: int
    reembedded_count: int
    done: bool
    embedding_model: str
    def __init__(self, total_count: _Optional[int] = ..., reembedded_count: _Optional[int] = ..., done: _Optional[bool] = ..., embedding_model: _Optional[str] = ...) -> None: ...

class ApiKey(_message.Message):
    __slots__ = ("id", "tenant", "role", "user_ids", "agent_ids", "display_name", "create_time", "expire_time", "revoke_time", "last_use_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_USE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    tenant: str
    role: ApiKeyRole
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    display_name: str
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    revoke_time: _timestamp_pb2.Timestamp
    last_use_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., tenant: _Optional[str] = ..., role: _Optional[_Union[ApiKeyRole, str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., display_name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_use_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("tenant", "role", "user_ids", "agent_ids", "display_name", "ttl")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    AGENT_IDS_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    role: ApiKeyRole
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    agent_ids: _containers.RepeatedScalarFieldContainer[str]
    display_name: str
    ttl: _duration_pb2.Duration
    def __init__(self, tenant: _Optional[str] = ..., role: _Optional[_Union[ApiKeyRole, str]] = ..., user_ids: _Optional[_Iterable[str]] = ..., agent_ids: _Optional[_Iterable[str]] = ..., display_name: _Optional[str] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("api_key", "secret")
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    api_key: ApiKey
    secret: str
    def __init__(self, api_key: _Optional[_Union[ApiKey, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "show_revoked", "tenant")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SHOW_REVOKED_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    show_revoked: bool
    tenant: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., show_revoked: _Optional[bool] = ..., tenant: _Optional[str] = ...) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("api_keys", "next_page_token")
    API_KEYS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    api_keys: _containers.RepeatedCompositeFieldContainer[ApiKey]
    next_page_token: str
    def __init__(self, api_keys: _Optional[_Iterable[_Union[ApiKey, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeApiKeyResponse(_message.Message):
    __slots__ = ("api_key",)
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    api_key: ApiKey
    def __init__(self, api_key: _Optional[_Union[ApiKey, _Mapping]] = ...) -> None: ...
