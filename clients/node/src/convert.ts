// protobuf messages -> the typed results of ./types.ts, and enum, time and
// duration helpers (the twin of the Python SDK's mnemo._convert).

import { create } from "@bufbuild/protobuf";
import { DurationSchema, TimestampSchema, type Duration, type Timestamp } from "@bufbuild/protobuf/wkt";
import * as adminPb from "./gen/mnemo/v1/admin_service_pb.js";
import * as memPb from "./gen/mnemo/v1/memory_pb.js";
import * as pb from "./gen/mnemo/v1/memory_service_pb.js";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";
import { MnemoError } from "./errors.js";
import * as t from "./types.js";
import { fromStruct } from "./values.js";

// Each client enum, with the proto enum it mirrors and that enum's value prefix.
interface EnumSpec {
  readonly name: string;
  readonly members: Readonly<Record<string, string>>;
  readonly proto: Readonly<Record<string, string | number>>;
  readonly prefix: string;
}

function spec(
  name: string,
  members: Readonly<Record<string, string>>,
  proto: Readonly<Record<string, string | number>>,
  prefix: string,
): EnumSpec {
  return { name, members, proto, prefix };
}

export const ENUMS = {
  MemoryKind: spec("MemoryKind", t.MemoryKind, memPb.MemoryKind, "MEMORY_KIND_"),
  DedupMode: spec("DedupMode", t.DedupMode, pb.DedupMode, "DEDUP_MODE_"),
  SearchMode: spec("SearchMode", t.SearchMode, pb.SearchMode, "SEARCH_MODE_"),
  RecencyBasis: spec("RecencyBasis", t.RecencyBasis, pb.RecencyBasis, "RECENCY_BASIS_"),
  ChangeType: spec("ChangeType", t.ChangeType, pb.ChangeType, "CHANGE_TYPE_"),
  EventType: spec("EventType", t.EventType, pb.EventType, "EVENT_TYPE_"),
  ImportConflictPolicy: spec(
    "ImportConflictPolicy",
    t.ImportConflictPolicy,
    pb.ImportConflictPolicy,
    "IMPORT_CONFLICT_POLICY_",
  ),
  ApiKeyRole: spec("ApiKeyRole", t.ApiKeyRole, adminPb.ApiKeyRole, "API_KEY_ROLE_"),
  IndexKind: spec("IndexKind", t.IndexKind, adminPb.IndexKind, "INDEX_KIND_"),
  InconsistencyKind: spec(
    "InconsistencyKind",
    t.InconsistencyKind,
    adminPb.InconsistencyKind,
    "INCONSISTENCY_KIND_",
  ),
  EvictionOrder: spec("EvictionOrder", t.EvictionOrder, adminPb.EvictionOrder, "EVICTION_ORDER_"),
} as const;

// protoc-gen-es strips the shared prefix from enum member names, so the
// generated enums' keys are exactly the client enum's names.

/** The client enum member of a proto enum number; UNSPECIFIED for numbers this
 * client does not know (the `raw` message keeps the number). */
export function enumFromProto<E extends string>(which: EnumSpec, number: number): E {
  const name = which.proto[number];
  return (typeof name === "string" && name in which.members ? name : "UNSPECIFIED") as E;
}

/** The proto number of a client enum member or of its name in any case, with
 * or without the proto prefix ("semantic", "SEMANTIC", "MEMORY_KIND_SEMANTIC"). */
export function enumToProto(which: EnumSpec, value: string): number {
  if (typeof value !== "string") {
    throw new TypeError(`${which.name} must be a string, not ${typeof value}`);
  }
  let name = value.toUpperCase();
  if (name.startsWith(which.prefix)) {
    name = name.slice(which.prefix.length);
  }
  const number = Object.hasOwn(which.members, name) ? which.proto[name] : undefined;
  if (typeof number !== "number") {
    const choices = Object.values(which.members)
      .filter((m) => m !== "UNSPECIFIED")
      .map((m) => m.toLowerCase())
      .join(", ");
    throw new RangeError(`unknown ${which.name} ${JSON.stringify(value)}; expected one of ${choices}`);
  }
  return number;
}

// -- times and durations ----------------------------------------------------------

/** The RFC 3339 range (0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z), in seconds since the epoch. */
export const MIN_SECONDS = -62_135_596_800n;
export const MAX_SECONDS = 253_402_300_799n;

/** A Timestamp clamped to the RFC 3339 range, nanos to [0, 999999999]: what a
 * server that stored a time before it checked times may still send would
 * otherwise be an Invalid Date, or fail proto-JSON. Like the Python SDK, a
 * time past the end becomes its last nanosecond. */
export function clampTimestamp(ts: Timestamp): Timestamp {
  if (ts.seconds < MIN_SECONDS) {
    return create(TimestampSchema, { seconds: MIN_SECONDS, nanos: 0 });
  }
  if (ts.seconds > MAX_SECONDS) {
    return create(TimestampSchema, { seconds: MAX_SECONDS, nanos: 999_999_999 });
  }
  if (ts.nanos < 0 || ts.nanos > 999_999_999) {
    return create(TimestampSchema, { seconds: ts.seconds, nanos: Math.min(Math.max(ts.nanos, 0), 999_999_999) });
  }
  return ts;
}

/** A Timestamp as a Date (millisecond precision, clamped to the RFC 3339 range), or null when unset. */
export function timeFromProto(ts: Timestamp | undefined): Date | null {
  if (ts === undefined) {
    return null;
  }
  const clamped = clampTimestamp(ts);
  return new Date(Number(clamped.seconds) * 1000 + Math.floor(clamped.nanos / 1e6));
}

/** A Date (or an RFC 3339 string) as a Timestamp. */
export function timeToProto(value: Date | string, name: string): Timestamp {
  const date = typeof value === "string" ? new Date(value) : value;
  if (!(date instanceof Date)) {
    throw new TypeError(`${name} must be a Date`);
  }
  const ms = date.getTime();
  if (Number.isNaN(ms)) {
    throw new RangeError(`${name} is not a valid time`);
  }
  const seconds = Math.floor(ms / 1000);
  return create(TimestampSchema, { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1e6 });
}

/** A Duration in seconds, or null when unset. */
export function durationFromProto(d: Duration | undefined): number | null {
  if (d === undefined) {
    return null;
  }
  return Number(d.seconds) + d.nanos / 1e9;
}

// Python's round(): halves go to the even neighbour.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Seconds as a Duration, exactly as the Python SDK makes it:
 * round(seconds * 1e9) nanoseconds, split with the sign on both parts. */
export function durationToProto(seconds: number, name: string): Duration {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) {
    throw new TypeError(`${name} must be a finite number of seconds`);
  }
  const nanos = BigInt(roundHalfEven(seconds * 1e9));
  const billion = 1_000_000_000n;
  let s = nanos / billion;
  let n = nanos % billion;
  // BigInt division truncates; the Python SDK floors, then moves a negative
  // remainder back so that seconds and nanos have the same sign.
  if (n < 0n) {
    s -= 1n;
    n += billion;
  }
  if (s < 0n && n > 0n) {
    s += 1n;
    n -= billion;
  }
  return create(DurationSchema, { seconds: s, nanos: Number(n) });
}

const num = (v: bigint | number): number => Number(v);

// -- memories -----------------------------------------------------------------

export function memory(m: memPb.Memory): t.Memory {
  return {
    id: m.id,
    userId: m.userId,
    agentId: m.agentId,
    runId: m.runId,
    content: m.content,
    kind: enumFromProto<t.MemoryKind>(ENUMS.MemoryKind, m.kind),
    tags: [...m.tags],
    metadata: fromStruct(m.metadata),
    embedding: m.embedding.length ? [...m.embedding] : null,
    embeddingModel: m.embeddingModel,
    contentHash: m.contentHash,
    createTime: timeFromProto(m.createTime),
    updateTime: timeFromProto(m.updateTime),
    expireTime: timeFromProto(m.expireTime),
    version: num(m.version),
    revision: num(m.revision),
    etag: m.etag,
    links: m.links.map((l) => ({ targetId: l.targetId, relation: l.relation, weight: l.weight })),
    pinned: m.pinned,
    lastRetrieveTime: timeFromProto(m.lastRetrieveTime),
    raw: m,
  };
}

export function createResult(r: pb.CreateMemoryResponse): t.CreateResult {
  return {
    memory: memory(r.memory ?? create(memPb.MemorySchema)),
    deduplicated: r.deduplicated,
    similarity: r.similarity,
    raw: r,
  };
}

export function deleteResult(r: pb.DeleteMemoryResponse): t.DeleteResult {
  return { revision: num(r.revision), raw: r };
}

function explanation(h: pb.SearchHit): t.HitExplanation | null {
  const e = h.explanation;
  if (e === undefined) {
    return null;
  }
  return {
    vectorScore: e.vectorScore ?? null,
    vectorRank: e.vectorRank ?? null,
    keywordScore: e.keywordScore ?? null,
    keywordRank: e.keywordRank ?? null,
    fusedScore: e.fusedScore ?? null,
    baseScore: e.baseScore ?? null,
    recencyFactor: e.recencyFactor ?? null,
    ageSeconds: e.ageSeconds ?? null,
    importance: e.importance ?? null,
    importanceFactor: e.importanceFactor ?? null,
    pinFactor: e.pinFactor ?? null,
    reranked: e.reranked ?? null,
    rerankScore: e.rerankScore ?? null,
  };
}

export function searchResult(r: pb.SearchMemoriesResponse): t.SearchResult {
  return {
    hits: r.hits.map((h) => ({
      memory: memory(h.memory ?? create(memPb.MemorySchema)),
      score: h.score,
      explanation: explanation(h),
      raw: h,
    })),
    embeddingModel: r.embeddingModel,
    revision: num(r.revision),
    raw: r,
  };
}

export function streamSearchResult(r: pb.StreamSearchMemoriesResponse): t.StreamSearchResult {
  return {
    queryId: r.queryId,
    result: r.outcome.case === "result" ? searchResult(r.outcome.value) : null,
    error: r.outcome.case === "error" ? MnemoError.fromStatus(r.outcome.value) : null,
    raw: r,
  };
}

export function writeResult(r: pb.WriteResult): t.WriteResult {
  const base = { deduplicated: false, similarity: 0, revision: 0, memory: null, raw: r };
  if (r.status !== undefined && r.status.code !== 0) {
    return { ...base, operation: null, error: MnemoError.fromStatus(r.status), ok: false };
  }
  const response = r.response;
  switch (response.case) {
    case "create": {
      const m = memory(response.value.memory ?? create(memPb.MemorySchema));
      return {
        ...base,
        operation: "create",
        error: null,
        memory: m,
        deduplicated: response.value.deduplicated,
        similarity: response.value.similarity,
        revision: m.revision,
        ok: true,
      };
    }
    case "update": {
      const m = memory(response.value.memory ?? create(memPb.MemorySchema));
      return { ...base, operation: "update", error: null, memory: m, revision: m.revision, ok: true };
    }
    case "delete":
      return { ...base, operation: "delete", error: null, revision: num(response.value.revision), ok: true };
    default:
      return { ...base, operation: null, error: null, ok: true };
  }
}

export function batchWriteResult(r: pb.BatchWriteMemoriesResponse): t.BatchWriteResult {
  return { results: r.results.map(writeResult), revision: num(r.revision), raw: r };
}

export function exportHeader(h: pb.ExportHeader): t.ExportHeader {
  return {
    formatVersion: h.formatVersion,
    embeddingModel: h.embeddingModel,
    dimension: h.dimension,
    exportTime: timeFromProto(h.exportTime),
    revision: num(h.revision),
    raw: h,
  };
}

export function importResult(r: pb.ImportMemoriesResponse): t.ImportResult {
  return {
    importedCount: num(r.importedCount),
    skippedCount: num(r.skippedCount),
    reembeddedCount: num(r.reembeddedCount),
    failedCount: num(r.failedCount),
    failures: r.failures.map((f) => ({
      index: num(f.index),
      memoryId: f.memoryId,
      error: MnemoError.fromStatus(f.status ?? create(StatusSchema)),
      raw: f,
    })),
    raw: r,
  };
}

export function deleteMemoriesResult(r: pb.DeleteMemoriesResponse): t.DeleteMemoriesResult {
  return {
    deletedCount: num(r.deletedCount),
    memoryIds: [...r.memoryIds],
    revision: num(r.revision),
    raw: r,
  };
}

export function memoryVersion(v: pb.MemoryVersion): t.MemoryVersion {
  return {
    memoryId: v.memoryId,
    version: num(v.version),
    revision: num(v.revision),
    changeType: enumFromProto<t.ChangeType>(ENUMS.ChangeType, v.changeType),
    changeTime: timeFromProto(v.changeTime),
    apiKeyId: v.apiKeyId,
    before: v.before ? memory(v.before) : null,
    after: v.after ? memory(v.after) : null,
    changedFields: [...(v.changedFields?.paths ?? [])],
    raw: v,
  };
}

export function historyPage(r: pb.GetMemoryHistoryResponse): t.HistoryPage {
  return { versions: r.versions.map(memoryVersion), nextPageToken: r.nextPageToken, raw: r };
}

export function memoryPage(r: pb.ListMemoriesResponse): t.MemoryPage {
  return { memories: r.memories.map(memory), nextPageToken: r.nextPageToken, revision: num(r.revision), raw: r };
}

export function memoryEvent(e: pb.MemoryEvent): t.MemoryEvent {
  return {
    type: enumFromProto<t.EventType>(ENUMS.EventType, e.type),
    revision: num(e.revision),
    memoryId: e.memoryId,
    memory: e.memory ? memory(e.memory) : null,
    eventTime: timeFromProto(e.eventTime),
    raw: e,
  };
}

// -- admin --------------------------------------------------------------------

export function stats(r: adminPb.GetStatsResponse): t.Stats {
  return {
    tenants: r.tenants.map((x) => ({
      tenant: x.tenant,
      memoryCount: num(x.memoryCount),
      contentBytes: num(x.contentBytes),
      scopes: x.scopes.map((s) => ({
        userId: s.scope?.userId ?? "",
        agentId: s.scope?.agentId ?? "",
        runId: s.scope?.runId ?? "",
        memoryCount: num(s.memoryCount),
        raw: s,
      })),
      raw: x,
    })),
    shards: r.shards.map((s) => ({
      shardId: s.shardId,
      kind: enumFromProto<t.IndexKind>(ENUMS.IndexKind, s.kind),
      vectorCount: num(s.vectorCount),
      dimension: s.dimension,
      memoryBytes: num(s.memoryBytes),
      snapshotRevision: num(s.snapshotRevision),
      kindReason: s.kindReason,
      raw: s,
    })),
    caches: r.caches.map((c) => ({
      name: c.name,
      backend: c.backend,
      hits: num(c.hits),
      misses: num(c.misses),
      errors: num(c.errors),
      hitRate: c.hitRate,
      bytes: num(c.bytes),
      state: c.state,
      raw: c,
    })),
    revision: num(r.revision),
    oldestRevision: num(r.oldestRevision),
    embeddingModel: r.embeddingModel,
    dimension: r.dimension,
    retentionPolicies: r.retentionPolicies.map((p) => ({
      tenant: p.tenant,
      userId: p.scope?.userId ?? "",
      agentId: p.scope?.agentId ?? "",
      runId: p.scope?.runId ?? "",
      maxAge: durationFromProto(p.maxAge),
      maxCount: num(p.maxCount),
      evictionOrder: enumFromProto<t.EvictionOrder>(ENUMS.EvictionOrder, p.evictionOrder),
      raw: p,
    })),
    serverVersion: r.serverVersion,
    raw: r,
  };
}

export function consistencyReport(r: adminPb.CheckConsistencyResponse): t.ConsistencyReport {
  return {
    consistent: r.consistent,
    storeCount: num(r.storeCount),
    indexCount: num(r.indexCount),
    inconsistencies: r.inconsistencies.map((i) => ({
      kind: enumFromProto<t.InconsistencyKind>(ENUMS.InconsistencyKind, i.kind),
      memoryId: i.memoryId,
      tenant: i.tenant,
      raw: i,
    })),
    repairedCount: num(r.repairedCount),
    raw: r,
  };
}

export function snapshot(r: adminPb.CreateSnapshotResponse): t.Snapshot {
  return {
    revision: num(r.revision),
    snapshotTime: timeFromProto(r.snapshotTime),
    bytes: num(r.bytes),
    shardCount: r.shardCount,
    raw: r,
  };
}

export function reembedProgress(r: adminPb.ReembedMemoriesResponse): t.ReembedProgress {
  return {
    totalCount: num(r.totalCount),
    reembeddedCount: num(r.reembeddedCount),
    done: r.done,
    embeddingModel: r.embeddingModel,
    raw: r,
  };
}

export function apiKey(k: adminPb.ApiKey): t.ApiKey {
  return {
    id: k.id,
    tenant: k.tenant,
    role: enumFromProto<t.ApiKeyRole>(ENUMS.ApiKeyRole, k.role),
    userIds: [...k.userIds],
    agentIds: [...k.agentIds],
    displayName: k.displayName,
    createTime: timeFromProto(k.createTime),
    expireTime: timeFromProto(k.expireTime),
    revokeTime: timeFromProto(k.revokeTime),
    lastUseTime: timeFromProto(k.lastUseTime),
    raw: k,
  };
}

export function createdApiKey(r: adminPb.CreateApiKeyResponse): t.CreatedApiKey {
  return { apiKey: apiKey(r.apiKey ?? create(adminPb.ApiKeySchema)), secret: r.secret, raw: r };
}

export function apiKeyPage(r: adminPb.ListApiKeysResponse): t.ApiKeyPage {
  return { apiKeys: r.apiKeys.map(apiKey), nextPageToken: r.nextPageToken, raw: r };
}
