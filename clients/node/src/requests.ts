// Request building: the one place where each RPC's request message is made
// from the client's options (the twin of the Python SDK's mnemo._requests,
// field for field, so that the same inputs give the same messages on the wire).

import { create, fromJson, isMessage, type JsonValue } from "@bufbuild/protobuf";
import { FieldMaskSchema, type FieldMask } from "@bufbuild/protobuf/wkt";
import * as adminPb from "./gen/mnemo/v1/admin_service_pb.js";
import {
  MemoryLinkSchema,
  MemorySchema,
  ScopeSchema,
  type Memory as MemoryMessage,
  type MemoryLink as MemoryLinkMessage,
  type Scope,
} from "./gen/mnemo/v1/memory_pb.js";
import * as pb from "./gen/mnemo/v1/memory_service_pb.js";
import { durationToProto, enumToProto, ENUMS, timeToProto } from "./convert.js";
import type {
  BatchWriteOptions,
  CallOptions,
  CreateApiKeyOptions,
  CreateOptions,
  DeleteMemoriesOptions,
  DeleteOptions,
  ExportOptions,
  GetOptions,
  GetStatsOptions,
  HeaderLike,
  HistoryOptions,
  ImportMemoriesOptions,
  ListApiKeysOptions,
  ListOptions,
  MemoryLike,
  ReembedOptions,
  ScopeOptions,
  SearchOptions,
  UpdateOptions,
  WatchOptions,
} from "./options.js";
import type { DedupPolicy, MemoryLink, SearchQuery } from "./types.js";
import { toStruct } from "./values.js";

/** Request fields only: the options of a method without its call options. */
export type Fields<T> = Omit<T, keyof CallOptions>;

export function scope(o: ScopeOptions): Scope {
  return create(ScopeSchema, { userId: o.userId ?? "", agentId: o.agentId ?? "", runId: o.runId ?? "" });
}

function strings(value: readonly string[] | null | undefined, name: string): string[] {
  if (typeof value === "string") {
    throw new TypeError(`${name} must be an array of strings, not a string`);
  }
  return [...(value ?? [])];
}

function links(value: readonly MemoryLink[] | null | undefined): MemoryLinkMessage[] {
  return (value ?? []).map((link) =>
    create(MemoryLinkSchema, { targetId: link.targetId, relation: link.relation, weight: link.weight ?? 0 }),
  );
}

function dedupPolicy(dedup: DedupPolicy | string): pb.DedupPolicy {
  const policy: DedupPolicy = typeof dedup === "string" ? { mode: dedup } : dedup;
  return create(pb.DedupPolicySchema, {
    mode: enumToProto(ENUMS.DedupMode, policy.mode),
    similarityThreshold: policy.similarityThreshold ?? 0,
    merge: policy.merge ?? false,
  });
}

function mask(paths: readonly string[] | null | undefined): FieldMask | undefined {
  return paths == null ? undefined : create(FieldMaskSchema, { paths: strings(paths, "readMask") });
}

// -- MemoryService ------------------------------------------------------------

export function createMemory(content: string, o: Fields<CreateOptions> = {}): pb.CreateMemoryRequest {
  const memory = create(MemorySchema, {
    id: o.id ?? "",
    userId: o.userId ?? "",
    agentId: o.agentId ?? "",
    runId: o.runId ?? "",
    content,
    tags: strings(o.tags, "tags"),
    embedding: [...(o.embedding ?? [])],
    embeddingModel: o.embeddingModel ?? "",
    pinned: Boolean(o.pinned),
  });
  if (o.kind != null) {
    memory.kind = enumToProto(ENUMS.MemoryKind, o.kind);
  }
  if (o.metadata) {
    memory.metadata = toStruct(o.metadata);
  }
  if (o.expireTime != null) {
    memory.expireTime = timeToProto(o.expireTime, "expireTime");
  }
  memory.links = links(o.links);
  const request = create(pb.CreateMemoryRequestSchema, { memory, requestId: o.requestId ?? "" });
  if (o.dedup != null) {
    request.dedup = dedupPolicy(o.dedup);
  }
  if (o.ttl != null) {
    request.ttl = durationToProto(o.ttl, "ttl");
  }
  return request;
}

/** A consistency token as the proto's int64 (0, unset, when not given). */
function revision(value: number | bigint | null | undefined): bigint {
  return value == null ? 0n : BigInt(value);
}

export function getMemory(id: string, o: Fields<GetOptions> = {}): pb.GetMemoryRequest {
  return create(pb.GetMemoryRequestSchema, { id, readMask: mask(o.readMask), minRevision: revision(o.minRevision) });
}

/** The update mask holds exactly the fields given (not undefined); null clears a field. */
export function updateMemory(id: string, o: Fields<UpdateOptions> = {}): pb.UpdateMemoryRequest {
  const memory: MemoryMessage = create(MemorySchema, { id, embeddingModel: o.embeddingModel ?? "" });
  const paths: string[] = [];
  if (o.content !== undefined) {
    paths.push("content");
    memory.content = o.content ?? "";
  }
  if (o.kind !== undefined) {
    paths.push("kind");
    if (o.kind !== null) {
      memory.kind = enumToProto(ENUMS.MemoryKind, o.kind);
    }
  }
  if (o.tags !== undefined) {
    const tags = strings(o.tags, "tags");
    paths.push("tags");
    memory.tags = tags;
  }
  if (o.metadata !== undefined) {
    paths.push("metadata");
    memory.metadata = toStruct(o.metadata ?? {});
  }
  if (o.embedding !== undefined) {
    paths.push("embedding");
    memory.embedding = [...(o.embedding ?? [])];
  }
  if (o.expireTime !== undefined) {
    paths.push("expire_time");
    if (o.expireTime !== null) {
      memory.expireTime = timeToProto(o.expireTime, "expireTime");
    }
  }
  if (o.links !== undefined) {
    paths.push("links");
    memory.links = links(o.links);
  }
  if (o.pinned !== undefined) {
    paths.push("pinned");
    memory.pinned = Boolean(o.pinned);
  }
  const request = create(pb.UpdateMemoryRequestSchema, {
    memory,
    updateMask: create(FieldMaskSchema, { paths }),
    etag: o.etag ?? "",
    requestId: o.requestId ?? "",
  });
  if (o.ttl != null) {
    request.ttl = durationToProto(o.ttl, "ttl");
  }
  return request;
}

export function deleteMemory(id: string, o: Fields<DeleteOptions> = {}): pb.DeleteMemoryRequest {
  return create(pb.DeleteMemoryRequestSchema, { id, etag: o.etag ?? "", requestId: o.requestId ?? "" });
}

export function listMemories(o: Fields<ListOptions> = {}): pb.ListMemoriesRequest {
  return create(pb.ListMemoriesRequestSchema, {
    scope: scope(o),
    filter: o.filter ?? "",
    orderBy: o.orderBy ?? "",
    pageSize: o.pageSize ?? 0,
    pageToken: o.pageToken ?? "",
    readMask: mask(o.readMask),
    minRevision: revision(o.minRevision),
  });
}

export function searchMemories(
  query: string | null | undefined,
  o: Fields<SearchOptions> = {},
): pb.SearchMemoriesRequest {
  const request = create(pb.SearchMemoriesRequestSchema, {
    query: query ?? "",
    vector: [...(o.vector ?? [])],
    scope: scope(o),
    filter: o.filter ?? "",
    topK: o.topK ?? 0,
    includeEmbedding: Boolean(o.includeEmbedding),
    explain: Boolean(o.explain),
    minRevision: revision(o.minRevision),
  });
  if (o.minScore != null) {
    request.minScore = o.minScore;
  }
  if (o.mode != null) {
    request.mode = enumToProto(ENUMS.SearchMode, o.mode);
  }
  if (o.rrfK != null) {
    request.rrfK = o.rrfK;
  }
  if (o.recencyHalfLifeSeconds != null) {
    request.recencyHalfLifeSeconds = o.recencyHalfLifeSeconds;
  }
  if (o.recencyBasis != null) {
    request.recencyBasis = enumToProto(ENUMS.RecencyBasis, o.recencyBasis);
  }
  if (o.recencyWeight != null) {
    request.recencyWeight = o.recencyWeight;
  }
  if (o.importanceKey) {
    request.importanceKey = o.importanceKey;
  }
  if (o.importanceWeight != null) {
    request.importanceWeight = o.importanceWeight;
  }
  if (o.pinBoost != null) {
    request.pinBoost = o.pinBoost;
  }
  if (o.rerank != null) {
    request.rerank = o.rerank;
  }
  return request;
}

/** The score-adjustment and rerank options of a search (docs/retrieval.md), in both SDKs. */
const RANKING_OPTIONS = [
  "recencyHalfLifeSeconds",
  "recencyBasis",
  "recencyWeight",
  "importanceKey",
  "importanceWeight",
  "pinBoost",
  "rerank",
] as const;

const QUERY_FIELDS = [
  "query",
  "vector",
  "userId",
  "agentId",
  "runId",
  "filter",
  "topK",
  "minScore",
  "mode",
  "rrfK",
  "includeEmbedding",
  "explain",
  ...RANKING_OPTIONS,
  "minRevision",
  "queryId",
] as const;

/** A batch or stream query with the call's defaults filled in where it has none. */
export function searchQuery(query: string | SearchQuery, defaults: Readonly<Record<string, unknown>>): SearchQuery {
  const given = (typeof query === "string" ? { query } : query) as Readonly<Record<string, unknown>>;
  if (typeof given !== "object" || given === null) {
    throw new TypeError("a query must be a string or a SearchQuery object");
  }
  const merged: Record<string, unknown> = {};
  for (const name of QUERY_FIELDS) {
    merged[name] = given[name] ?? defaults[name] ?? null;
  }
  return merged as SearchQuery;
}

export function searchFromQuery(q: SearchQuery): pb.SearchMemoriesRequest {
  return searchMemories(q.query, {
    vector: q.vector,
    userId: q.userId,
    agentId: q.agentId,
    runId: q.runId,
    filter: q.filter,
    topK: q.topK,
    minScore: q.minScore,
    mode: q.mode,
    rrfK: q.rrfK,
    includeEmbedding: q.includeEmbedding ?? false,
    explain: q.explain ?? false,
    recencyHalfLifeSeconds: q.recencyHalfLifeSeconds,
    recencyBasis: q.recencyBasis,
    recencyWeight: q.recencyWeight,
    importanceKey: q.importanceKey,
    importanceWeight: q.importanceWeight,
    pinBoost: q.pinBoost,
    rerank: q.rerank,
    minRevision: q.minRevision,
  });
}

/** The defaults a batch or stream search passes on to its queries. */
export function searchDefaults(o: Fields<SearchOptions>): Record<string, unknown> {
  return {
    userId: o.userId,
    agentId: o.agentId,
    runId: o.runId,
    filter: o.filter,
    topK: o.topK,
    minScore: o.minScore,
    mode: o.mode,
    rrfK: o.rrfK,
    includeEmbedding: o.includeEmbedding ?? false,
    explain: o.explain ?? false,
    recencyHalfLifeSeconds: o.recencyHalfLifeSeconds,
    recencyBasis: o.recencyBasis,
    recencyWeight: o.recencyWeight,
    importanceKey: o.importanceKey,
    importanceWeight: o.importanceWeight,
    pinBoost: o.pinBoost,
    rerank: o.rerank,
    minRevision: o.minRevision,
  };
}

export function batchSearchMemories(
  queries: readonly (string | SearchQuery)[],
  defaults: Readonly<Record<string, unknown>>,
): pb.BatchSearchMemoriesRequest {
  if (typeof queries === "string" || !Array.isArray(queries)) {
    throw new TypeError("queries must be an array of queries, not a string");
  }
  return create(pb.BatchSearchMemoriesRequestSchema, {
    requests: queries.map((q) => searchFromQuery(searchQuery(q, defaults))),
  });
}

/** One message of the stream; the query id is the query's own or its position. */
export function streamSearchMemories(
  query: string | SearchQuery,
  defaults: Readonly<Record<string, unknown>>,
  position: number,
): pb.StreamSearchMemoriesRequest {
  const q = searchQuery(query, defaults);
  return create(pb.StreamSearchMemoriesRequestSchema, {
    queryId: q.queryId || String(position),
    search: searchFromQuery(q),
  });
}

/**
 * One operation of `batchWrite`; make it with `WriteOp.create`, `.update` or
 * `.delete`, which take the same arguments as the client methods of the same
 * names (without the call options).
 *
 * @example
 *   const ops = [WriteOp.create("likes tea", { userId: "bob" }), WriteOp.delete("old-id")];
 */
export class WriteOp {
  /** The mnemo.v1.WriteOperation message. */
  readonly raw: pb.WriteOperation;

  private constructor(raw: pb.WriteOperation) {
    this.raw = raw;
  }

  /** A create; see `MnemoClient.create`. */
  static create(content: string, options: Fields<CreateOptions> = {}): WriteOp {
    return new WriteOp(
      create(pb.WriteOperationSchema, { operation: { case: "create", value: createMemory(content, options) } }),
    );
  }

  /** An update; see `MnemoClient.update`. */
  static update(id: string, options: Fields<UpdateOptions> = {}): WriteOp {
    return new WriteOp(
      create(pb.WriteOperationSchema, { operation: { case: "update", value: updateMemory(id, options) } }),
    );
  }

  /** A delete; see `MnemoClient.delete`. */
  static delete(id: string, options: Fields<DeleteOptions> = {}): WriteOp {
    return new WriteOp(
      create(pb.WriteOperationSchema, { operation: { case: "delete", value: deleteMemory(id, options) } }),
    );
  }
}

export function batchWriteMemories(
  operations: readonly WriteOp[],
  o: Fields<BatchWriteOptions> = {},
): pb.BatchWriteMemoriesRequest {
  return create(pb.BatchWriteMemoriesRequestSchema, {
    operations: operations.map((op) => {
      if (!(op instanceof WriteOp)) {
        throw new TypeError("operations must be WriteOp.create(...), .update(...) or .delete(...)");
      }
      return op.raw;
    }),
    atomic: Boolean(o.atomic),
    requestId: o.requestId ?? "",
  });
}

function hasRaw(value: object, typeName: string): value is { raw: { $typeName: string } } {
  const raw = (value as { raw?: unknown }).raw;
  return typeof raw === "object" && raw !== null && (raw as { $typeName?: unknown }).$typeName === typeName;
}

/** The messages an import stream starts with: options (when given), then the header. */
export function importMemoriesHead(o: Fields<ImportMemoriesOptions> = {}): pb.ImportMemoriesRequest[] {
  const head: pb.ImportMemoriesRequest[] = [];
  if (o.onConflict != null || o.forceReembed) {
    const options = create(pb.ImportOptionsSchema, { forceReembed: Boolean(o.forceReembed) });
    if (o.onConflict != null) {
      options.onConflict = enumToProto(ENUMS.ImportConflictPolicy, o.onConflict);
    }
    head.push(create(pb.ImportMemoriesRequestSchema, { item: { case: "options", value: options } }));
  }
  head.push(create(pb.ImportMemoriesRequestSchema, { item: { case: "header", value: exportHeaderMessage(o.header) } }));
  return head;
}

function exportHeaderMessage(header: HeaderLike | null | undefined): pb.ExportHeader {
  if (header == null) {
    return create(pb.ExportHeaderSchema, { formatVersion: 1 });
  }
  if (isMessage(header, pb.ExportHeaderSchema)) {
    return header;
  }
  if (hasRaw(header, pb.ExportHeaderSchema.typeName)) {
    return header.raw as pb.ExportHeader;
  }
  return fromJson(pb.ExportHeaderSchema, header as JsonValue);
}

/** One memory of an import stream: a Memory, a mnemo.v1.Memory or its proto-JSON object. */
export function importMemoriesItem(memory: MemoryLike): pb.ImportMemoriesRequest {
  let message: MemoryMessage;
  if (isMessage(memory, MemorySchema)) {
    message = memory;
  } else if (hasRaw(memory, MemorySchema.typeName)) {
    message = memory.raw as MemoryMessage;
  } else {
    message = fromJson(MemorySchema, memory as JsonValue);
  }
  return create(pb.ImportMemoriesRequestSchema, { item: { case: "memory", value: message } });
}

export function exportMemories(o: Fields<ExportOptions> = {}): pb.ExportMemoriesRequest {
  return create(pb.ExportMemoriesRequestSchema, {
    scope: scope(o),
    filter: o.filter ?? "",
    omitEmbeddings: Boolean(o.omitEmbeddings),
  });
}

export function deleteMemories(o: Fields<DeleteMemoriesOptions> = {}): pb.DeleteMemoriesRequest {
  return create(pb.DeleteMemoriesRequestSchema, {
    scope: scope(o),
    filter: o.filter ?? "",
    dryRun: Boolean(o.dryRun),
    requestId: o.requestId ?? "",
  });
}

export function getMemoryHistory(id: string, o: Fields<HistoryOptions> = {}): pb.GetMemoryHistoryRequest {
  return create(pb.GetMemoryHistoryRequestSchema, { id, pageSize: o.pageSize ?? 0, pageToken: o.pageToken ?? "" });
}

export function watchMemories(o: Fields<WatchOptions> = {}): pb.WatchMemoriesRequest {
  if (typeof o.eventTypes === "string") {
    throw new TypeError("eventTypes must be an array, not a string");
  }
  const request = create(pb.WatchMemoriesRequestSchema, {
    scope: scope(o),
    filter: o.filter ?? "",
    eventTypes: (o.eventTypes ?? []).map((e) => enumToProto(ENUMS.EventType, e)),
  });
  if (o.startRevision != null) {
    // Set even when 0: that replays the whole retained log; unset is live.
    request.startRevision = BigInt(o.startRevision);
  }
  if (o.progressInterval != null) {
    request.progressInterval = durationToProto(o.progressInterval, "progressInterval");
  }
  return request;
}

// -- AdminService -------------------------------------------------------------

export function getStats(o: Fields<GetStatsOptions> = {}): adminPb.GetStatsRequest {
  return create(adminPb.GetStatsRequestSchema, { scope: scope(o), scopeLimit: o.scopeLimit ?? 0 });
}

export function checkConsistency(o: { repair?: boolean } = {}): adminPb.CheckConsistencyRequest {
  return create(adminPb.CheckConsistencyRequestSchema, { repair: Boolean(o.repair) });
}

export function createSnapshot(): adminPb.CreateSnapshotRequest {
  return create(adminPb.CreateSnapshotRequestSchema);
}

export function reembedMemories(o: Fields<ReembedOptions> = {}): adminPb.ReembedMemoriesRequest {
  return create(adminPb.ReembedMemoriesRequestSchema, {
    scope: scope(o),
    filter: o.filter ?? "",
    force: Boolean(o.force),
    dryRun: Boolean(o.dryRun),
  });
}

export function createApiKey(role: string, o: Fields<CreateApiKeyOptions> = {}): adminPb.CreateApiKeyRequest {
  const request = create(adminPb.CreateApiKeyRequestSchema, {
    tenant: o.tenant ?? "",
    role: enumToProto(ENUMS.ApiKeyRole, role),
    userIds: strings(o.userIds, "userIds"),
    agentIds: strings(o.agentIds, "agentIds"),
    displayName: o.displayName ?? "",
  });
  if (o.ttl != null) {
    request.ttl = durationToProto(o.ttl, "ttl");
  }
  return request;
}

export function listApiKeys(o: Fields<ListApiKeysOptions> = {}): adminPb.ListApiKeysRequest {
  return create(adminPb.ListApiKeysRequestSchema, {
    pageSize: o.pageSize ?? 0,
    pageToken: o.pageToken ?? "",
    showRevoked: Boolean(o.showRevoked),
    tenant: o.tenant ?? "",
  });
}

export function revokeApiKey(id: string): adminPb.RevokeApiKeyRequest {
  return create(adminPb.RevokeApiKeyRequestSchema, { id });
}
