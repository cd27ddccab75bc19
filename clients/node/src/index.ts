// @mnemo/client: the Node.js and TypeScript client of the Mnemo memory server.
//
// `MnemoClient` has one method per RPC of mnemo.v1.MemoryService and
// AdminService, the camelCase twins of the Python SDK's methods. Results are
// the plain objects of ./types.ts (each keeps its protobuf message as `raw`);
// failed calls reject with a `MnemoError`. The generated messages and service
// descriptors are in ./gen (re-exported below as `v1`).

export { MnemoClient } from "./client.js";
export { MnemoError, DOMAIN } from "./errors.js";
export type { FieldViolation, MnemoErrorCode, MnemoErrorInit } from "./errors.js";
export { RetryPolicy } from "./retry.js";
export type { RetryPolicyOptions } from "./retry.js";
export { WriteOp } from "./requests.js";
export { ExportStream, Watch } from "./streams.js";
export type { ClientOptions, PemSource } from "./settings.js";
export type * from "./options.js";
export {
  ApiKeyRole,
  ChangeType,
  DedupMode,
  EventType,
  EvictionOrder,
  ImportConflictPolicy,
  InconsistencyKind,
  IndexKind,
  MemoryKind,
  RecencyBasis,
  SearchMode,
} from "./types.js";
export type {
  ApiKey,
  ApiKeyPage,
  BatchWriteResult,
  CacheStats,
  ConsistencyReport,
  CreatedApiKey,
  CreateResult,
  DedupPolicy,
  DeleteMemoriesResult,
  DeleteResult,
  EnumLike,
  ExportHeader,
  HistoryPage,
  HitExplanation,
  ImportFailure,
  ImportResult,
  Inconsistency,
  IndexShardStats,
  Memory,
  MemoryEvent,
  MemoryLink,
  MemoryPage,
  MemoryVersion,
  MetadataInput,
  MetadataValue,
  ReembedProgress,
  RetentionPolicy,
  ScopeCount,
  SearchHit,
  SearchQuery,
  SearchResult,
  Snapshot,
  Stats,
  StreamSearchResult,
  TenantStats,
  WriteResult,
} from "./types.js";
export { ExtractionMode, FactEvent, OperationState } from "./extraction.js";
export type {
  ConversationMessage,
  ExtractOptions,
  FactOutcome,
  IterOperationsOptions,
  ListOperationsOptions,
  Operation,
  OperationPage,
} from "./extraction.js";
export { double, MetadataDouble } from "./values.js";
export { VERSION as version } from "./version.js";
export * as v1 from "./v1.js";
