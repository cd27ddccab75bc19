// The options of each client method: the camelCase twins of the Python SDK's
// keyword arguments, one to one, plus the call options every method takes.
//
// `undefined` (or a missing key) means "not given", as Python's default None
// does; `null` means the same everywhere except in `update`, where it clears
// the field (Python's None there) while `undefined` leaves it out of the
// update mask (Python's UNSET).

import type { Memory as MemoryMessage } from "./gen/mnemo/v1/memory_pb.js";
import type { ExportHeader as ExportHeaderMessage } from "./gen/mnemo/v1/memory_service_pb.js";
import type {
  ApiKeyRole,
  DedupMode,
  DedupPolicy,
  EnumLike,
  EventType,
  ExportHeader,
  ImportConflictPolicy,
  Memory,
  MemoryKind,
  MemoryLink,
  MetadataInput,
  RecencyBasis,
  SearchMode,
} from "./types.js";

/** The options every call takes (as connect-es's CallOptions). */
export interface CallOptions {
  /** The call's deadline in milliseconds, retries included; the client's
   * default (`ClientOptions.timeoutMs`) for unary calls when not given, none
   * for streams. `Infinity` means no deadline. */
  timeoutMs?: number | null;
  /** Cancels the call (and any retry wait); it then rejects with code "cancelled". */
  signal?: AbortSignal;
  /** Extra request headers (gRPC metadata) for this call. */
  headers?: HeadersInit;
}

/** The scope a call reads, writes or deletes in. */
export interface ScopeOptions {
  userId?: string | null;
  agentId?: string | null;
  runId?: string | null;
}

/** Options of `create`. */
export interface CreateOptions extends ScopeOptions, CallOptions {
  /** "episodic" (the default), "semantic" or "procedural". */
  kind?: EnumLike<MemoryKind> | null;
  /** Free-form labels. */
  tags?: readonly string[] | null;
  /** JSON-like metadata; integers are kept exact to 64 bits. */
  metadata?: Readonly<Record<string, MetadataInput>> | null;
  /** A client-chosen id; the server makes one when not given. */
  id?: string | null;
  /** Idempotency key; a fresh one is made when not given (see `autoRequestId`). */
  requestId?: string | null;
  /** "exact", "semantic" or a `DedupPolicy`: return an existing duplicate instead. */
  dedup?: DedupPolicy | EnumLike<DedupMode> | null;
  /** Seconds the memory lives; not with expireTime. */
  ttl?: number | null;
  /** When the memory expires. */
  expireTime?: Date | string | null;
  /** A vector to use instead of embedding the content on the server. */
  embedding?: readonly number[] | null;
  /** The name of the model that made `embedding`. */
  embeddingModel?: string | null;
  /** Links to other memories. */
  links?: readonly MemoryLink[] | null;
  /** Exempt the memory from retention policies. */
  pinned?: boolean | null;
}

/** Options of `get`. */
export interface GetOptions extends CallOptions {
  /** The fields to return (all but "embedding" by default; name "embedding" to get the vector). */
  readMask?: readonly string[] | null;
  /** A consistency token: a write's (or an earlier read's) `revision` this read
   * must reflect; a server behind waits, bounded, to catch up (docs/operations.md,
   * "Read your own writes on any replica"). */
  minRevision?: number | bigint | null;
}

/** Options of `update`: the fields given (not undefined) are changed and only
 * those; null clears a field. */
export interface UpdateOptions extends CallOptions {
  content?: string | null;
  kind?: EnumLike<MemoryKind> | null;
  tags?: readonly string[] | null;
  metadata?: Readonly<Record<string, MetadataInput>> | null;
  embedding?: readonly number[] | null;
  expireTime?: Date | string | null;
  links?: readonly MemoryLink[] | null;
  pinned?: boolean | null;
  /** The model that made `embedding`. */
  embeddingModel?: string | null;
  /** New lifetime from now, in seconds; not with expireTime. */
  ttl?: number | null;
  /** Apply only if the memory's etag still equals this (else ETAG_MISMATCH). */
  etag?: string | null;
  /** Idempotency key; a fresh one is made when not given. */
  requestId?: string | null;
}

/** Options of `delete`. */
export interface DeleteOptions extends CallOptions {
  etag?: string | null;
  requestId?: string | null;
}

/** Options of `iterMemories`. */
export interface IterMemoriesOptions extends ScopeOptions, CallOptions {
  /** A filter expression (docs/filters.md), such as 'tags:"pref"'. */
  filter?: string | null;
  /** "create_time desc" (the default), "update_time", "id", ... */
  orderBy?: string | null;
  /** 1 to 1000; the server's default is 100. */
  pageSize?: number | null;
  readMask?: readonly string[] | null;
  /** A consistency token: a write's (or an earlier read's) `revision` this read
   * must reflect; a server behind waits, bounded, to catch up (docs/operations.md,
   * "Read your own writes on any replica"). */
  minRevision?: number | bigint | null;
}

/** Options of `list`. */
export interface ListOptions extends IterMemoriesOptions {
  /** The `nextPageToken` of the previous page. */
  pageToken?: string | null;
}

/** The search settings of `search`, and the defaults of `batchSearch` and `streamSearch`. */
export interface SearchDefaults extends ScopeOptions, CallOptions {
  filter?: string | null;
  /** How many hits, 1 to 1000; the server's default is 10. */
  topK?: number | null;
  /** Only hits at least this similar (cosine), in [-1, 1]; hybrid mode applies it
   * to its vector half, keyword mode refuses it. */
  minScore?: number | null;
  /** "vector" (by meaning, the default), "keyword" (by words and identifiers,
   * BM25) or "hybrid" (both, fused by reciprocal rank fusion); keyword and
   * hybrid need a text query (docs/retrieval.md). */
  mode?: EnumLike<SearchMode> | null;
  /** Hybrid mode's fusion constant, 1 to 10000; the server's default is 60. */
  rrfK?: number | null;
  /** Return each hit's vector. */
  includeEmbedding?: boolean;
  /** Give each hit an `explanation` of how it was ranked (each half's score
   * and rank, the fused score); such a search is never served from cache. */
  explain?: boolean;
  /** Decay scores by age with this half-life: each candidate's score is
   * multiplied by (1 - recencyWeight) + recencyWeight * 0.5 ** (age / half-life). */
  recencyHalfLifeSeconds?: number | null;
  /** The time age counts from: "update_time" (the default), "create_time" or
   * "last_retrieve_time". */
  recencyBasis?: EnumLike<RecencyBasis> | null;
  /** How much of a score the decay may take, in [0, 1]; the server's default is 1. */
  recencyWeight?: number | null;
  /** A metadata key holding a number in [0, 1]; scores are multiplied by
   * 1 + importanceWeight * that number. */
  importanceKey?: string | null;
  /** The weight of `importanceKey`, in [0, 100]; the server's default is 1. */
  importanceWeight?: number | null;
  /** Multiply pinned memories' scores by 1 + pinBoost, in [0, 100]. */
  pinBoost?: number | null;
  /** Rerank the best candidates with the server's cross-encoder (true) or not
   * (false); null takes the server's default. */
  rerank?: boolean | null;
  /** A consistency token: a write's (or an earlier read's) `revision` this read
   * must reflect; a server behind waits, bounded, to catch up (docs/operations.md,
   * "Read your own writes on any replica"). */
  minRevision?: number | bigint | null;
}

/** Options of `search`. */
export interface SearchOptions extends SearchDefaults {
  /** A vector of the server's dimension, instead of a text query. */
  vector?: readonly number[] | null;
}

/** Options of `batchWrite`. */
export interface BatchWriteOptions extends CallOptions {
  /** Apply all or none. */
  atomic?: boolean;
  /** Idempotency key of the whole batch; a fresh one is made when not given. */
  requestId?: string | null;
}

/** A memory to import: a `Memory` (as `export` yields it), a mnemo.v1.Memory
 * message or its proto-JSON object. */
export type MemoryLike = Memory | MemoryMessage | Readonly<Record<string, unknown>>;

/** An export header: an `ExportHeader`, a mnemo.v1.ExportHeader message or its proto-JSON object. */
export type HeaderLike = ExportHeader | ExportHeaderMessage | Readonly<Record<string, unknown>>;

/** Options of `importJsonl`. */
export interface ImportJsonlOptions extends CallOptions {
  /** "skip" (the default), "overwrite" or "fail" for ids that exist. */
  onConflict?: EnumLike<ImportConflictPolicy> | null;
  /** Re-embed even when the models match. */
  forceReembed?: boolean;
  /** Draw a progress bar on stderr; null means when stderr is a terminal. */
  progress?: boolean | null;
}

/** Options of `importMemories`. */
export interface ImportMemoriesOptions extends CallOptions {
  /** The export's header (`await ExportStream.header()`); embeddings are reused
   * when its model is the server's. A version-1 header without a model (so
   * everything is re-embedded) when not given. */
  header?: HeaderLike | null;
  onConflict?: EnumLike<ImportConflictPolicy> | null;
  forceReembed?: boolean;
}

/** Options of `export`. */
export interface ExportOptions extends ScopeOptions, CallOptions {
  filter?: string | null;
  /** Leave the vectors out (an import then re-embeds). */
  omitEmbeddings?: boolean;
}

/** Options of `exportJsonl`. */
export interface ExportJsonlOptions extends ExportOptions {
  /** Draw a progress bar on stderr; null means when stderr is a terminal. */
  progress?: boolean | null;
}

/** Options of `deleteMemories`: a scope or a filter is required. */
export interface DeleteMemoriesOptions extends ScopeOptions, CallOptions {
  filter?: string | null;
  /** Report what would be deleted and delete nothing. */
  dryRun?: boolean;
  requestId?: string | null;
}

/** Options of `iterHistory`. */
export interface IterHistoryOptions extends CallOptions {
  pageSize?: number | null;
}

/** Options of `history`. */
export interface HistoryOptions extends IterHistoryOptions {
  pageToken?: string | null;
}

/** Options of `watch`. */
export interface WatchOptions extends ScopeOptions, CallOptions {
  filter?: string | null;
  /** Replay the changes after this revision (0: the whole retained log), then
   * go on live; when not given, start live from now. */
  startRevision?: number | bigint | null;
  /** Only these kinds ("put", "delete", "expired"). */
  eventTypes?: readonly EnumLike<EventType>[] | null;
  /** Seconds between the server's progress notifications while idle; they
   * move `Watch.revision` on but are not yielded. */
  progressInterval?: number | null;
  /** Reconnect after a disconnect (the default); false rejects instead. */
  reconnect?: boolean;
}

/** Options of `getStats`. */
export interface GetStatsOptions extends ScopeOptions, CallOptions {
  scopeLimit?: number | null;
}

/** Options of `checkConsistency`. */
export interface CheckConsistencyOptions extends CallOptions {
  /** Rebuild index entries and drop cache entries that disagree with the store. */
  repair?: boolean;
}

/** Options of `reembed`. */
export interface ReembedOptions extends ScopeOptions, CallOptions {
  filter?: string | null;
  /** Re-embed even memories already embedded by the current model. */
  force?: boolean;
  /** Count what would be re-embedded and change nothing. */
  dryRun?: boolean;
}

/** Options of `createApiKey`. */
export interface CreateApiKeyOptions extends CallOptions {
  /** The key's tenant; the caller's when not given. */
  tenant?: string | null;
  /** Restrict the key to these users. */
  userIds?: readonly string[] | null;
  /** Restrict the key to these agents. */
  agentIds?: readonly string[] | null;
  /** A name for people. */
  displayName?: string | null;
  /** Seconds the key works; until revoked when not given. */
  ttl?: number | null;
}

/** Options of `iterApiKeys`. */
export interface IterApiKeysOptions extends CallOptions {
  pageSize?: number | null;
  /** Include revoked keys. */
  showRevoked?: boolean;
  /** Another tenant whose keys to list (an admin key of the system tenant only); the caller's when not given. */
  tenant?: string | null;
}

/** Options of `listApiKeys`. */
export interface ListApiKeysOptions extends IterApiKeysOptions {
  pageToken?: string | null;
}

/** The role argument of `createApiKey`. */
export type ApiKeyRoleLike = EnumLike<ApiKeyRole>;
