import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mnemo.v1 import memory_pb2 as _memory_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExtractionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXTRACTION_MODE_UNSPECIFIED: _ClassVar[ExtractionMode]
    EXTRACTION_MODE_ADDITIVE: _ClassVar[ExtractionMode]
    EXTRACTION_MODE_RECONCILE: _ClassVar[ExtractionMode]

class OperationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_STATE_UNSPECIFIED: _ClassVar[OperationState]
    OPERATION_STATE_PENDING: _ClassVar[OperationState]
    OPERATION_STATE_RUNNING: _ClassVar[OperationState]
    OPERATION_STATE_SUCCEEDED: _ClassVar[OperationState]
    OPERATION_STATE_FAILED: _ClassVar[OperationState]

class FactEvent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FACT_EVENT_UNSPECIFIED: _ClassVar[FactEvent]
    FACT_EVENT_ADDED: _ClassVar[FactEvent]
    FACT_EVENT_UPDATED: _ClassVar[FactEvent]
    FACT_EVENT_DELETED: _ClassVar[FactEvent]
    FACT_EVENT_UNCHANGED: _ClassVar[FactEvent]
EXTRACTION_MODE_UNSPECIFIED: ExtractionMode
EXTRACTION_MODE_ADDITIVE: ExtractionMode
EXTRACTION_MODE_RECONCILE: ExtractionMode
OPERATION_STATE_UNSPECIFIED: OperationState
OPERATION_STATE_PENDING: OperationState
OPERATION_STATE_RUNNING: OperationState
OPERATION_STATE_SUCCEEDED: OperationState
OPERATION_STATE_FAILED: OperationState
FACT_EVENT_UNSPECIFIED: FactEvent
FACT_EVENT_ADDED: FactEvent
FACT_EVENT_UPDATED: FactEvent
FACT_EVENT_DELETED: FactEvent
FACT_EVENT_UNCHANGED: FactEvent

class ConversationMessage(_message.Message):
    __slots__ = ("role", "content", "name", "time")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    role: str
    content: str
    name: str
    time: _timestamp_pb2.Timestamp
    def __init__(self, role: _Optional[str] = ..., content: _Optional[str] = ..., name: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExtractMemoriesRequest(_message.Message):
    __slots__ = ("messages", "scope", "metadata", "mode", "request_id", "wait")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _memory_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_memory_pb2.Value, _Mapping]] = ...) -> None: ...
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[ConversationMessage]
    scope: _memory_pb2.Scope
    metadata: _containers.MessageMap[str, _memory_pb2.Value]
    mode: ExtractionMode
    request_id: str
    wait: bool
    def __init__(self, messages: _Optional[_Iterable[_Union[ConversationMessage, _Mapping]]] = ..., scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., metadata: _Optional[_Mapping[str, _memory_pb2.Value]] = ..., mode: _Optional[_Union[ExtractionMode, str]] = ..., request_id: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class ExtractMemoriesResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetOperationResponse(_message.Message):
    __slots__ = ("operation",)
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    operation: Operation
    def __init__(self, operation: _Optional[_Union[Operation, _Mapping]] = ...) -> None: ...

class ListOperationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "scope")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: OperationState
    scope: _memory_pb2.Scope
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[OperationState, str]] = ..., scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ...) -> None: ...

class ListOperationsResponse(_message.Message):
    __slots__ = ("operations", "next_page_token")
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    next_page_token: str
    def __init__(self, operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("id", "state", "scope", "mode", "request_id", "create_time", "update_time", "attempts", "error", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: OperationState
    scope: _memory_pb2.Scope
    mode: ExtractionMode
    request_id: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    attempts: int
    error: OperationError
    result: ExtractionResult
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[OperationState, str]] = ..., scope: _Optional[_Union[_memory_pb2.Scope, _Mapping]] = ..., mode: _Optional[_Union[ExtractionMode, str]] = ..., request_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ..., error: _Optional[_Union[OperationError, _Mapping]] = ..., result: _Optional[_Union[ExtractionResult, _Mapping]] = ...) -> None: ...

class OperationError(_message.Message):
    __slots__ = ("reason", "message")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ExtractionResult(_message.Message):
    __slots__ = ("facts", "revision")
    FACTS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    facts: _containers.RepeatedCompositeFieldContainer[FactOutcome]
    revision: int
    def __init__(self, facts: _Optional[_Iterable[_Union[FactOutcome, _Mapping]]] = ..., revision: _Optional[int] = ...) -> None: ...

class FactOutcome(_message.Message):
    __slots__ = ("event", "text", "memory", "before", "after", "revision")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    event: FactEvent
    text: str
    memory: _memory_pb2.Memory
    before: _memory_pb2.Memory
    after: _memory_pb2.Memory
    revision: int
    def __init__(self, event: _Optional[_Union[FactEvent, str]] = ..., text: _Optional[str] = ..., memory: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., before: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., after: _Optional[_Union[_memory_pb2.Memory, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...
