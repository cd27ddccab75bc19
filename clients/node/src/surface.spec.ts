// The public surface of the package, pinned: what it exports, the methods of
// MnemoClient with their arguments and options, one method per RPC, and the
// Python SDK's surface mirrored one to one (read from the Python SDK itself,
// so that a method or keyword added there fails here until it is added here).

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import * as pkg from "./index.js";
import { ExportStream, MnemoClient, Watch } from "./index.js";
import type * as api from "./index.js";
import { AdminService } from "./gen/mnemo/v1/admin_service_pb.js";
import { ExtractionService } from "./gen/mnemo/v1/extraction_service_pb.js";
import { MemoryService } from "./gen/mnemo/v1/memory_service_pb.js";
import { PYTHON, REPO_ROOT } from "./testing/server.js";

// -- compile-time pins: `tsc` fails when an option list below drifts from its type --

type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
function same<T extends true>(): T | void {}

const CALL = ["timeoutMs", "signal", "headers"] as const;
const SCOPE = ["userId", "agentId", "runId"] as const;
const ADJUST = ["recencyHalfLifeSeconds", "recencyBasis", "recencyWeight", "importanceKey", "importanceWeight", "pinBoost", "rerank"] as const;
const SEARCH = [...SCOPE, "filter", "topK", "minScore", "mode", "rrfK", "includeEmbedding", "explain", ...ADJUST, "minRevision", ...CALL] as const;

/** Each method: its positional arguments, then the keys of its options object. */
const METHODS = {
  batchSearch: [["queries"], SEARCH],
  batchWrite: [["operations"], ["atomic", "requestId", ...CALL]],
  checkConsistency: [[], ["repair", ...CALL]],
  close: [[], []],
  create: [
    ["content"],
    [...SCOPE, "kind", "tags", "metadata", "id", "requestId", "dedup", "ttl", "expireTime", "embedding",
      "embeddingModel", "links", "pinned", ...CALL],
  ],
  createApiKey: [["role"], ["tenant", "userIds", "agentIds", "displayName", "ttl", ...CALL]],
  createSnapshot: [[], CALL],
  delete: [["id"], ["etag", "requestId", ...CALL]],
  deleteMemories: [[], [...SCOPE, "filter", "dryRun", "requestId", ...CALL]],
  export: [[], [...SCOPE, "filter", "omitEmbeddings", ...CALL]],
  extract: [["messages"], [...SCOPE, "metadata", "mode", "requestId", "wait", ...CALL]],
  getOperation: [["id"], CALL],
  iterOperations: [[], [...SCOPE, "state", "pageSize", ...CALL]],
  listOperations: [[], [...SCOPE, "state", "pageSize", "pageToken", ...CALL]],
  exportJsonl: [["path"], [...SCOPE, "filter", "omitEmbeddings", "progress", ...CALL]],
  get: [["id"], ["readMask", "minRevision", ...CALL]],
  getStats: [[], [...SCOPE, "scopeLimit", ...CALL]],
  health: [["service"], CALL],
  history: [["id"], ["pageSize", "pageToken", ...CALL]],
  importJsonl: [["path"], ["onConflict", "forceReembed", "progress", ...CALL]],
  importMemories: [["memories"], ["header", "onConflict", "forceReembed", ...CALL]],
  iterApiKeys: [[], ["pageSize", "showRevoked", "tenant", ...CALL]],
  iterHistory: [["id"], ["pageSize", ...CALL]],
  iterMemories: [[], [...SCOPE, "filter", "orderBy", "pageSize", "readMask", "minRevision", ...CALL]],
  list: [[], [...SCOPE, "filter", "orderBy", "pageSize", "pageToken", "readMask", "minRevision", ...CALL]],
  listApiKeys: [[], ["pageSize", "pageToken", "showRevoked", "tenant", ...CALL]],
  reembed: [[], [...SCOPE, "filter", "force", "dryRun", ...CALL]],
  revokeApiKey: [["id"], CALL],
  search: [["query"], ["vector", ...SEARCH]],
  streamSearch: [["queries"], SEARCH],
  update: [
    ["id"],
    ["content", "kind", "tags", "metadata", "embedding", "expireTime", "links", "pinned", "embeddingModel", "ttl",
      "etag", "requestId", ...CALL],
  ],
  watch: [[], [...SCOPE, "filter", "startRevision", "eventTypes", "progressInterval", "reconnect", ...CALL]],
} as const;
type Opts<M extends keyof typeof METHODS> = (typeof METHODS)[M][1][number];
same<Equal<keyof api.SearchDefaults, Opts<"batchSearch">>>();
same<Equal<keyof api.BatchWriteOptions, Opts<"batchWrite">>>();
same<Equal<keyof api.CheckConsistencyOptions, Opts<"checkConsistency">>>();
same<Equal<keyof api.CreateOptions, Opts<"create">>>();
same<Equal<keyof api.CreateApiKeyOptions, Opts<"createApiKey">>>();
same<Equal<keyof api.CallOptions, Opts<"createSnapshot">>>();
same<Equal<keyof api.DeleteOptions, Opts<"delete">>>();
same<Equal<keyof api.DeleteMemoriesOptions, Opts<"deleteMemories">>>();
same<Equal<keyof api.ExportOptions, Opts<"export">>>();
same<Equal<keyof api.ExportJsonlOptions, Opts<"exportJsonl">>>();
same<Equal<keyof api.ExtractOptions, Opts<"extract">>>();
same<Equal<keyof api.IterOperationsOptions, Opts<"iterOperations">>>();
same<Equal<keyof api.ListOperationsOptions, Opts<"listOperations">>>();
same<Equal<keyof api.GetOptions, Opts<"get">>>();
same<Equal<keyof api.GetStatsOptions, Opts<"getStats">>>();
same<Equal<keyof api.HistoryOptions, Opts<"history">>>();
same<Equal<keyof api.ImportJsonlOptions, Opts<"importJsonl">>>();
same<Equal<keyof api.ImportMemoriesOptions, Opts<"importMemories">>>();
same<Equal<keyof api.IterApiKeysOptions, Opts<"iterApiKeys">>>();
same<Equal<keyof api.IterHistoryOptions, Opts<"iterHistory">>>();
same<Equal<keyof api.IterMemoriesOptions, Opts<"iterMemories">>>();
same<Equal<keyof api.ListOptions, Opts<"list">>>();
same<Equal<keyof api.ListApiKeysOptions, Opts<"listApiKeys">>>();
same<Equal<keyof api.ReembedOptions, Opts<"reembed">>>();
same<Equal<keyof api.SearchOptions, Opts<"search">>>();
same<Equal<keyof api.UpdateOptions, Opts<"update">>>();
same<Equal<keyof api.WatchOptions, Opts<"watch">>>();
same<Equal<Parameters<MnemoClient["batchSearch"]>[1], api.SearchDefaults | undefined>>();
same<Equal<Parameters<MnemoClient["streamSearch"]>[1], api.SearchDefaults | undefined>>();
same<Equal<Parameters<MnemoClient["create"]>[1], api.CreateOptions | undefined>>();
same<Equal<Parameters<MnemoClient["update"]>[1], api.UpdateOptions | undefined>>();
same<Equal<Parameters<MnemoClient["watch"]>[0], api.WatchOptions | undefined>>();

/** The client options: the twins of the Python constructor's keywords. */
const CLIENT_OPTIONS = [
  "address", "apiKey", "tls", "caFile", "certFile", "keyFile", "tlsServerName", "timeoutMs", "gzip",
  "keepaliveTimeMs", "keepaliveTimeoutMs", "retry", "autoRequestId", "metadata", "channelOptions",
] as const;
same<Equal<keyof api.ClientOptions, (typeof CLIENT_OPTIONS)[number]>>();

/** The exported types (checked by the compiler: each name must exist). */
type Exported = [
  api.ApiKey, api.ApiKeyPage, api.BatchWriteResult, api.CacheStats, api.ConsistencyReport, api.CreatedApiKey,
  api.CreateResult, api.DedupPolicy, api.DeleteMemoriesResult, api.DeleteResult, api.ExportHeader, api.HistoryPage,
  api.HitExplanation,
  api.ImportFailure, api.ImportResult, api.Inconsistency, api.IndexShardStats, api.Memory, api.MemoryEvent,
  api.MemoryLink, api.MemoryPage, api.MemoryVersion, api.ReembedProgress, api.RetentionPolicy, api.ScopeCount,
  api.SearchHit, api.SearchQuery, api.SearchResult, api.Snapshot, api.Stats, api.StreamSearchResult,
  api.TenantStats, api.WriteResult, api.FieldViolation, api.MnemoErrorCode, api.MetadataValue, api.MetadataInput,
  api.MemoryKind, api.DedupMode, api.SearchMode, api.ChangeType, api.EventType, api.ImportConflictPolicy, api.ApiKeyRole,
  api.IndexKind, api.InconsistencyKind, api.EvictionOrder, api.ExportStream, api.Watch, api.WriteOp,
  api.RetryPolicy, api.MnemoClient, api.MnemoError, api.ConversationMessage, api.FactOutcome, api.Operation,
  api.OperationPage, api.ExtractionMode, api.FactEvent, api.OperationState,
];
const TYPES = [
  "ApiKey", "ApiKeyPage", "BatchWriteResult", "CacheStats", "ConsistencyReport", "CreatedApiKey", "CreateResult",
  "DedupPolicy", "DeleteMemoriesResult", "DeleteResult", "ExportHeader", "HistoryPage", "HitExplanation",
  "ImportFailure",
  "ImportResult", "Inconsistency", "IndexShardStats", "Memory", "MemoryEvent", "MemoryLink", "MemoryPage",
  "MemoryVersion", "ReembedProgress", "RetentionPolicy", "ScopeCount", "SearchHit", "SearchQuery", "SearchResult",
  "Snapshot", "Stats", "StreamSearchResult", "TenantStats", "WriteResult", "ConversationMessage", "FactOutcome",
  "Operation", "OperationPage",
];
void (null as unknown as Exported);

// -- runtime pins -----------------------------------------------------------------

const RUNTIME_EXPORTS = [
  "ApiKeyRole", "ChangeType", "DOMAIN", "DedupMode", "EventType", "EvictionOrder", "ExportStream",
  "ExtractionMode", "FactEvent", "OperationState", "ImportConflictPolicy", "InconsistencyKind", "IndexKind", "MemoryKind", "MetadataDouble", "MnemoClient",
  "MnemoError", "RecencyBasis", "RetryPolicy", "SearchMode", "Watch", "WriteOp", "double", "v1", "version",
];

test("the package exports exactly this", () => {
  assert.deepEqual(Object.keys(pkg).sort(), [...RUNTIME_EXPORTS].sort());
  assert.equal(pkg.version, JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf-8")).version);
  assert.deepEqual(Object.keys(pkg.MemoryKind), ["UNSPECIFIED", "EPISODIC", "SEMANTIC", "PROCEDURAL"]);
});

function members(cls: { prototype: object }): string[] {
  return Object.getOwnPropertyNames(cls.prototype).filter((n) => n !== "constructor").sort();
}

test("the package holds the compiled code and its declarations, not the tests", () => {
  const out = execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    encoding: "utf-8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const files = (JSON.parse(out) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  for (const needed of ["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.d.ts", "dist/client.d.ts",
    "dist/gen/mnemo/v1/memory_service_pb.js", "src/client.ts"]) {
    assert.ok(files.includes(needed), needed);
  }
  assert.deepEqual(files.filter((f) => /spec|testing|readme-check/.test(f)), []);
});

test("MnemoClient has exactly these methods and properties", () => {
  const properties = members(MnemoClient).filter(
    (n) => Object.getOwnPropertyDescriptor(MnemoClient.prototype, n)?.get !== undefined,
  );
  assert.deepEqual(properties, ["address", "adminStub", "channel", "extractionStub", "stub"]);
  const methods = members(MnemoClient).filter((n) => !properties.includes(n) && n !== "toString");
  assert.deepEqual(methods, Object.keys(METHODS).sort());
  assert.deepEqual(members(ExportStream), ["close", "header", "next", "return"]);
  assert.deepEqual(members(Watch), ["close", "next", "return"]);
});

test("every RPC of the contract has a method", () => {
  const rpcs: Record<string, keyof typeof METHODS> = {
    "MemoryService.CreateMemory": "create", "MemoryService.GetMemory": "get",
    "MemoryService.UpdateMemory": "update", "MemoryService.DeleteMemory": "delete",
    "MemoryService.ListMemories": "list", "MemoryService.SearchMemories": "search",
    "MemoryService.BatchSearchMemories": "batchSearch", "MemoryService.StreamSearchMemories": "streamSearch",
    "MemoryService.BatchWriteMemories": "batchWrite", "MemoryService.ImportMemories": "importMemories",
    "MemoryService.ExportMemories": "export", "MemoryService.DeleteMemories": "deleteMemories",
    "MemoryService.GetMemoryHistory": "history", "MemoryService.WatchMemories": "watch",
    "AdminService.GetStats": "getStats", "AdminService.CheckConsistency": "checkConsistency",
    "AdminService.CreateSnapshot": "createSnapshot", "AdminService.ReembedMemories": "reembed",
    "AdminService.CreateApiKey": "createApiKey", "AdminService.ListApiKeys": "listApiKeys",
    "AdminService.RevokeApiKey": "revokeApiKey",
    "ExtractionService.ExtractMemories": "extract", "ExtractionService.GetOperation": "getOperation",
    "ExtractionService.ListOperations": "listOperations",
  };
  const contract = [MemoryService, AdminService, ExtractionService].flatMap((s) => s.methods.map((m) => `${s.name}.${m.name}`));
  assert.deepEqual(Object.keys(rpcs).sort(), contract.sort());
  for (const method of Object.values(rpcs)) {
    assert.ok(method in METHODS, method);
  }
});

// -- the Python SDK, read from the Python SDK -------------------------------------------

const camel = (name: string) => name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** Python names that have no Node twin on purpose, and why (see README "Differences"). */
const PYTHON_ONLY = {
  exports: {
    UNSET: "undefined leaves an update field out of the mask",
    AsyncMnemoClient: "every Node method is asynchronous; MnemoClient is the one client",
    AsyncExportStream: "ExportStream is already asynchronous",
    AsyncWatch: "Watch is already asynchronous",
    errors: "one MnemoError class carries the code",
    __version__: "exported as `version`",
  } as Record<string, string>,
};

interface PythonSurface {
  methods: Record<string, string[][] | "property">;
  init: string[];
  exports: string[];
}

function pythonSurface(): PythonSurface {
  const script = `
import inspect, json, mnemo
from mnemo import MnemoClient
methods = {}
for name in dir(MnemoClient):
    if name.startswith("_"):
        continue
    member = inspect.getattr_static(MnemoClient, name)
    if isinstance(member, property):
        methods[name] = "property"
        continue
    params = list(inspect.signature(getattr(MnemoClient, name)).parameters.values())[1:]
    methods[name] = [[p.name, p.kind.name] for p in params]
init = [p.name for p in list(inspect.signature(MnemoClient.__init__).parameters.values())[1:]]
print(json.dumps({"methods": methods, "init": init, "exports": list(mnemo.__all__)}))
`;
  const out = execFileSync(PYTHON, ["-c", script], { cwd: REPO_ROOT, encoding: "utf-8" });
  return JSON.parse(out) as PythonSurface;
}

test("every Python method has a camelCase twin with the same arguments and options", () => {
  const py = pythonSurface();
  const properties = Object.entries(py.methods)
    .filter(([, v]) => v === "property")
    .map(([k]) => camel(k));
  assert.deepEqual(properties.sort(), ["address", "adminStub", "channel", "extractionStub", "stub"]);
  const expected: Record<string, [string[], string[]]> = {};
  for (const [name, params] of Object.entries(py.methods)) {
    if (params === "property") continue;
    const positional = params.filter(([, kind]) => kind === "POSITIONAL_OR_KEYWORD").map(([n]) => camel(n!));
    const keywords = params
      .filter(([, kind]) => kind === "KEYWORD_ONLY")
      .map(([n]) => (n === "timeout" ? "timeoutMs" : camel(n!)));
    // Node calls also take a signal and headers; `close` takes nothing; watch
    // takes timeoutMs too (an overall deadline, which Python's watch lacks).
    const node =
      name === "close" ? keywords : [...keywords.filter((k) => k !== "timeoutMs"), "timeoutMs", "signal", "headers"];
    expected[camel(name)] = [positional, node];
  }
  const actual: Record<string, [string[], string[]]> = {};
  for (const [name, [positional, options]] of Object.entries(METHODS)) {
    actual[name] = [[...positional], [...options].sort()];
  }
  for (const value of Object.values(expected)) value[1].sort();
  assert.deepEqual(actual, expected);
});

test("the client options are the Python constructor's keywords", () => {
  const py = pythonSurface();
  const renamed: Record<string, string> = {
    timeout: "timeoutMs",
    keepalive_time: "keepaliveTimeMs",
    keepalive_timeout: "keepaliveTimeoutMs",
  };
  assert.deepEqual(py.init.map((n) => renamed[n] ?? camel(n)).sort(), [...CLIENT_OPTIONS].sort());
});

test("every Python export has a Node twin (a value or a type) or a stated reason", () => {
  const py = pythonSurface();
  const missing = py.exports.filter(
    (name) => !(name in pkg) && !TYPES.includes(name) && !(name in PYTHON_ONLY.exports),
  );
  assert.deepEqual(missing, []);
});
