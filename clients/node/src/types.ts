// The typed objects the client takes and returns (the twin of the Python
// SDK's mnemo.types).
//
// Results are plain read-only objects whose `raw` field keeps the protobuf
// message they were decoded from, for fields this version of the client does
// not know yet. Times are `Date`s (UTC, millisecond precision); durations on
// the wire are seconds (`number`), as in the Python SDK; int64 counts and
// revisions are `number`s; enums are the proto value names without their
// prefix ("SEMANTIC"), and inputs accept them in any case, with or without the
// prefix ("semantic", "MEMORY_KIND_SEMANTIC").

import type * as pb from "./gen/mnemo/v1/memory_service_pb.js";
import type * as admin from "./gen/mnemo/v1/admin_service_pb.js";
import type * as mem from "./gen/mnemo/v1/memory_pb.js";
import type { MnemoError } from "./errors.js";
import type { MetadataDouble } from "./values.js";

// -- enums --------------------------------------------------------------------

/** What kind of memory this is (mnemo.v1.MemoryKind). */
export const MemoryKind = {
  UNSPECIFIED: "UNSPECIFIED",
  EPISODIC: "EPISODIC",
  SEMANTIC: "SEMANTIC",
  PROCEDURAL: "PROCEDURAL",
} as const;
export type MemoryKind = (typeof MemoryKind)[keyof typeof MemoryKind];

/** How a create detects an existing duplicate (mnemo.v1.DedupMode). */
export const DedupMode = {
  UNSPECIFIED: "UNSPECIFIED",
  NONE: "NONE",
  EXACT: "EXACT",
  SEMANTIC: "SEMANTIC",
} as const;
export type DedupMode = (typeof DedupMode)[keyof typeof DedupMode];

/** How a search finds and ranks memories (mnemo.v1.SearchMode). */
export const SearchMode = {
  UNSPECIFIED: "UNSPECIFIED",
  VECTOR: "VECTOR",
  KEYWORD: "KEYWORD",
  HYBRID: "HYBRID",
} as const;
export type SearchMode = (typeof SearchMode)[keyof typeof SearchMode];

/** The time a recency decay counts a memory's age from (mnemo.v1.RecencyBasis). */
export const RecencyBasis = {
  UNSPECIFIED: "UNSPECIFIED",
  CREATE_TIME: "CREATE_TIME",
  UPDATE_TIME: "UPDATE_TIME",
  LAST_RETRIEVE_TIME: "LAST_RETRIEVE_TIME",
} as const;
export type RecencyBasis = (typeof RecencyBasis)[keyof typeof RecencyBasis];

/** What a change in a memory's history did (mnemo.v1.ChangeType). */
export const ChangeType = {
  UNSPECIFIED: "UNSPECIFIED",
  CREATE: "CREATE",
  UPDATE: "UPDATE",
  DELETE: "DELETE",
  EXPIRE: "EXPIRE",
} as const;
export type ChangeType = (typeof ChangeType)[keyof typeof ChangeType];

/** The kind of a change-feed event (mnemo.v1.EventType). */
export const EventType = {
  UNSPECIFIED: "UNSPECIFIED",
  PUT: "PUT",
  DELETE: "DELETE",
  EXPIRED: "EXPIRED",
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** What an import does with a memory whose id exists (mnemo.v1.ImportConflictPolicy). */
export const ImportConflictPolicy = {
  UNSPECIFIED: "UNSPECIFIED",
  SKIP: "SKIP",
  OVERWRITE: "OVERWRITE",
  FAIL: "FAIL",
} as const;
export type ImportConflictPolicy = (typeof ImportConflictPolicy)[keyof typeof ImportConflictPolicy];

/** The role of an API key (mnemo.v1.ApiKeyRole). */
export const ApiKeyRole = {
  UNSPECIFIED: "UNSPECIFIED",
  READER: "READER",
  WRITER: "WRITER",
  ADMIN: "ADMIN",
} as const;
export type ApiKeyRole = (typeof ApiKeyRole)[keyof typeof ApiKeyRole];

/** The kind of vector index of a shard (mnemo.v1.IndexKind). */
export const IndexKind = {
  UNSPECIFIED: "UNSPECIFIED",
  FLAT: "FLAT",
  HNSW: "HNSW",
  IVF: "IVF",
} as const;
export type IndexKind = (typeof IndexKind)[keyof typeof IndexKind];

/** What a consistency check found wrong (mnemo.v1.InconsistencyKind). */
export const InconsistencyKind = {
  UNSPECIFIED: "UNSPECIFIED",
  MISSING_FROM_INDEX: "MISSING_FROM_INDEX",
  ORPHAN_IN_INDEX: "ORPHAN_IN_INDEX",
  STALE_IN_INDEX: "STALE_IN_INDEX",
  STALE_IN_CACHE: "STALE_IN_CACHE",
} as const;
export type InconsistencyKind = (typeof InconsistencyKind)[keyof typeof InconsistencyKind];

/** Which memories a maximum-count retention policy evicts first (mnemo.v1.EvictionOrder). */
export const EvictionOrder = {
  UNSPECIFIED: "UNSPECIFIED",
  OLDEST: "OLDEST",
  LEAST_RECENTLY_RETRIEVED: "LEAST_RECENTLY_RETRIEVED",
} as const;
export type EvictionOrder = (typeof EvictionOrder)[keyof typeof EvictionOrder];

/**
 * An enum value as an input: the member, its name in lower case, or any other
 * spelling of the name (any case, with or without the proto prefix).
 */
// `string & {}` keeps editor completion for the known names.
export type EnumLike<E extends string> = E | Lowercase<E> | (string & {});

// -- inputs -------------------------------------------------------------------

/** A metadata value, as `Memory.metadata` holds it. Integers are exact to 64
 * bits: they come back as `number`s, or `bigint`s beyond the safe range. */
export type MetadataValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | MetadataValue[]
  | { [key: string]: MetadataValue };

/** A metadata value as an input: whole `number`s and `bigint`s go on the wire
 * as integers, other numbers as doubles, and `double(n)` forces a double. */
export type MetadataInput =
  | MetadataDouble
  | null
  | boolean
  | number
  | bigint
  | string
  | readonly MetadataInput[]
  | { readonly [key: string]: MetadataInput };

/** A directed link from a memory to another one in the same tenant. */
export interface MemoryLink {
  readonly targetId: string;
  readonly relation: string;
  /** 0 when not given. */
  readonly weight?: number;
}

/** How a create treats a memory that already exists in the same scope. */
export interface DedupPolicy {
  /** "exact" (same normalized content) or "semantic" (similar embedding). */
  readonly mode: EnumLike<DedupMode>;
  /** For semantic mode; 0 (the default) means the server's default 0.9. */
  readonly similarityThreshold?: number;
  /** Merge the new tags and metadata into the existing memory. */
  readonly merge?: boolean;
}

/** One search of `batchSearch` or `streamSearch`; unset fields take the call's
 * defaults. Exactly one of `query` (text) and `vector` is required. */
export interface SearchQuery {
  readonly query?: string | null;
  readonly vector?: readonly number[] | null;
  readonly userId?: string | null;
  readonly agentId?: string | null;
  readonly runId?: string | null;
  readonly filter?: string | null;
  readonly topK?: number | null;
  readonly minScore?: number | null;
  readonly mode?: EnumLike<SearchMode> | null;
  readonly rrfK?: number | null;
  readonly includeEmbedding?: boolean | null;
  readonly explain?: boolean | null;
  readonly recencyHalfLifeSeconds?: number | null;
  readonly recencyBasis?: EnumLike<RecencyBasis> | null;
  readonly recencyWeight?: number | null;
  readonly importanceKey?: string | null;
  readonly importanceWeight?: number | null;
  readonly pinBoost?: number | null;
  readonly rerank?: boolean | null;
  /** A consistency token (see `search`); in a batch the highest applies to all. */
  readonly minRevision?: number | bigint | null;
  readonly queryId?: string | null;
}

// -- memories -----------------------------------------------------------------

/** A memory (mnemo.v1.Memory). */
export interface Memory {
  readonly id: string;
  readonly userId: string;
  readonly agentId: string;
  readonly runId: string;
  readonly content: string;
  readonly kind: MemoryKind;
  readonly tags: readonly string[];
  readonly metadata: Readonly<Record<string, MetadataValue>>;
  /** The vector, when the call asked for it; null otherwise. */
  readonly embedding: readonly number[] | null;
  readonly embeddingModel: string;
  readonly contentHash: string;
  readonly createTime: Date | null;
  readonly updateTime: Date | null;
  readonly expireTime: Date | null;
  readonly version: number;
  readonly revision: number;
  readonly etag: string;
  readonly links: readonly Required<MemoryLink>[];
  readonly pinned: boolean;
  readonly lastRetrieveTime: Date | null;
  readonly raw: mem.Memory;
}

/** The outcome of `create`: the memory, or the existing one deduplication matched. */
export interface CreateResult {
  readonly memory: Memory;
  readonly deduplicated: boolean;
  readonly similarity: number;
  readonly raw: pb.CreateMemoryResponse;
}

/** The outcome of `delete`. */
export interface DeleteResult {
  readonly revision: number;
  readonly raw: pb.DeleteMemoryResponse;
}

/** One page of `list`. */
export interface MemoryPage {
  readonly memories: readonly Memory[];
  readonly nextPageToken: string;
  /** The revision the server had applied when it read (a consistency token). */
  readonly revision: number;
  readonly raw: pb.ListMemoriesResponse;
}

/** One search hit: a memory and how well it matches, higher is better: the cosine
 * similarity in vector mode, BM25 in keyword mode, the reciprocal rank fusion
 * score in hybrid mode. */
export interface SearchHit {
  readonly memory: Memory;
  readonly score: number;
  /** How the hit was ranked, when the search asked to `explain`; else null. */
  readonly explanation: HitExplanation | null;
  readonly raw: pb.SearchHit;
}

/** How a search hit was ranked: the vector half's cosine similarity and rank
 * (from 1), the keyword half's BM25 score and rank, and in hybrid mode the
 * fused score, the sum of 1 / (rrfK + rank) over the ranks given. A part is
 * null when its half did not find the hit or did not run. */
export interface HitExplanation {
  readonly vectorScore: number | null;
  readonly vectorRank: number | null;
  readonly keywordScore: number | null;
  readonly keywordRank: number | null;
  readonly fusedScore: number | null;
  /** With score adjustments: the score they started from ((1 + cosine) / 2 in
   * vector mode) and each factor used; the hit's score is their product. */
  readonly baseScore: number | null;
  readonly recencyFactor: number | null;
  readonly ageSeconds: number | null;
  readonly importance: number | null;
  readonly importanceFactor: number | null;
  readonly pinFactor: number | null;
  /** With rerank: whether the reranker ordered the hit (false: it failed and the
   * plain order was served), and its score. */
  readonly reranked: boolean | null;
  readonly rerankScore: number | null;
}

/** The hits of one search, best first. */
export interface SearchResult {
  readonly hits: readonly SearchHit[];
  readonly embeddingModel: string;
  /** The revision the server had applied when it searched: pass it as
   * `minRevision` to read at least this fresh on another server. */
  readonly revision: number;
  readonly raw: pb.SearchMemoriesResponse;
}

/** One answer of `streamSearch`: a result or an error, for the query `queryId`. */
export interface StreamSearchResult {
  readonly queryId: string;
  readonly result: SearchResult | null;
  readonly error: MnemoError | null;
  readonly raw: pb.StreamSearchMemoriesResponse;
}

/** The outcome of one operation of `batchWrite`. */
export interface WriteResult {
  /** "create", "update" or "delete" when applied, else null. */
  readonly operation: "create" | "update" | "delete" | null;
  /** Why the operation was not applied, or null. */
  readonly error: MnemoError | null;
  /** The memory created or updated. */
  readonly memory: Memory | null;
  readonly deduplicated: boolean;
  readonly similarity: number;
  /** The revision of the change (of a delete, or the memory's). */
  readonly revision: number;
  /** Whether the operation was applied. */
  readonly ok: boolean;
  readonly raw: pb.WriteResult;
}

/** The outcome of `batchWrite`: one result per operation, in order. */
export interface BatchWriteResult {
  readonly results: readonly WriteResult[];
  readonly revision: number;
  readonly raw: pb.BatchWriteMemoriesResponse;
}

/** The header of an export. */
export interface ExportHeader {
  readonly formatVersion: number;
  readonly embeddingModel: string;
  readonly dimension: number;
  readonly exportTime: Date | null;
  readonly revision: number;
  readonly raw: pb.ExportHeader;
}

/** One memory an import did not store. */
export interface ImportFailure {
  readonly index: number;
  readonly memoryId: string;
  readonly error: MnemoError;
  readonly raw: pb.ImportFailure;
}

/** The outcome of an import. */
export interface ImportResult {
  readonly importedCount: number;
  readonly skippedCount: number;
  readonly reembeddedCount: number;
  readonly failedCount: number;
  readonly failures: readonly ImportFailure[];
  readonly raw: pb.ImportMemoriesResponse;
}

/** The outcome of `deleteMemories`. */
export interface DeleteMemoriesResult {
  readonly deletedCount: number;
  readonly memoryIds: readonly string[];
  readonly revision: number;
  readonly raw: pb.DeleteMemoriesResponse;
}

/** One version of a memory: a change and its effect. */
export interface MemoryVersion {
  readonly memoryId: string;
  readonly version: number;
  readonly revision: number;
  readonly changeType: ChangeType;
  readonly changeTime: Date | null;
  readonly apiKeyId: string;
  readonly before: Memory | null;
  readonly after: Memory | null;
  readonly changedFields: readonly string[];
  readonly raw: pb.MemoryVersion;
}

/** One page of `history`, newest version first. */
export interface HistoryPage {
  readonly versions: readonly MemoryVersion[];
  readonly nextPageToken: string;
  readonly raw: pb.GetMemoryHistoryResponse;
}

/** One change from the change feed (`watch`). */
export interface MemoryEvent {
  readonly type: EventType;
  readonly revision: number;
  readonly memoryId: string;
  readonly memory: Memory | null;
  readonly eventTime: Date | null;
  readonly raw: pb.MemoryEvent;
}

// -- admin --------------------------------------------------------------------

/** The number of memories in one scope. */
export interface ScopeCount {
  readonly userId: string;
  readonly agentId: string;
  readonly runId: string;
  readonly memoryCount: number;
  readonly raw: admin.ScopeCount;
}

/** The statistics of one tenant. */
export interface TenantStats {
  readonly tenant: string;
  readonly memoryCount: number;
  readonly contentBytes: number;
  readonly scopes: readonly ScopeCount[];
  readonly raw: admin.TenantStats;
}

/** The statistics of one index shard. */
export interface IndexShardStats {
  readonly shardId: string;
  readonly kind: IndexKind;
  readonly vectorCount: number;
  readonly dimension: number;
  readonly memoryBytes: number;
  readonly snapshotRevision: number;
  readonly kindReason: string;
  readonly raw: admin.IndexShardStats;
}

/** The statistics of one cache. */
export interface CacheStats {
  readonly name: string;
  readonly backend: string;
  readonly hits: number;
  readonly misses: number;
  readonly errors: number;
  readonly hitRate: number;
  readonly bytes: number;
  readonly state: string;
  readonly raw: admin.CacheStats;
}

/** A retention policy in force. */
export interface RetentionPolicy {
  readonly tenant: string;
  readonly userId: string;
  readonly agentId: string;
  readonly runId: string;
  /** Seconds; null means no age limit. */
  readonly maxAge: number | null;
  readonly maxCount: number;
  readonly evictionOrder: EvictionOrder;
  readonly raw: admin.RetentionPolicy;
}

/** The outcome of `getStats`. */
export interface Stats {
  readonly tenants: readonly TenantStats[];
  readonly shards: readonly IndexShardStats[];
  readonly caches: readonly CacheStats[];
  readonly revision: number;
  readonly oldestRevision: number;
  readonly embeddingModel: string;
  readonly dimension: number;
  readonly retentionPolicies: readonly RetentionPolicy[];
  readonly serverVersion: string;
  readonly raw: admin.GetStatsResponse;
}

/** One inconsistency a consistency check found. */
export interface Inconsistency {
  readonly kind: InconsistencyKind;
  readonly memoryId: string;
  readonly tenant: string;
  readonly raw: admin.Inconsistency;
}

/** The outcome of `checkConsistency`. */
export interface ConsistencyReport {
  readonly consistent: boolean;
  readonly storeCount: number;
  readonly indexCount: number;
  readonly inconsistencies: readonly Inconsistency[];
  readonly repairedCount: number;
  readonly raw: admin.CheckConsistencyResponse;
}

/** The outcome of `createSnapshot`. */
export interface Snapshot {
  readonly revision: number;
  readonly snapshotTime: Date | null;
  readonly bytes: number;
  readonly shardCount: number;
  readonly raw: admin.CreateSnapshotResponse;
}

/** One progress report of `reembed`. */
export interface ReembedProgress {
  readonly totalCount: number;
  readonly reembeddedCount: number;
  readonly done: boolean;
  readonly embeddingModel: string;
  readonly raw: admin.ReembedMemoriesResponse;
}

/** An API key, without its secret. */
export interface ApiKey {
  readonly id: string;
  readonly tenant: string;
  readonly role: ApiKeyRole;
  readonly userIds: readonly string[];
  readonly agentIds: readonly string[];
  readonly displayName: string;
  readonly createTime: Date | null;
  readonly expireTime: Date | null;
  readonly revokeTime: Date | null;
  readonly lastUseTime: Date | null;
  readonly raw: admin.ApiKey;
}

/** The outcome of `createApiKey`: the key and its secret, shown only once. */
export interface CreatedApiKey {
  readonly apiKey: ApiKey;
  readonly secret: string;
  readonly raw: admin.CreateApiKeyResponse;
}

/** One page of `listApiKeys`. */
export interface ApiKeyPage {
  readonly apiKeys: readonly ApiKey[];
  readonly nextPageToken: string;
  readonly raw: admin.ListApiKeysResponse;
}
