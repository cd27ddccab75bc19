// Request building, field for field as the Python SDK's _requests builds them
// (the same cases as clients/python/tests/test_sdk_surface.py), metadata
// values, enums, durations, and error and retry-policy decoding.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { AnySchema, anyPack, DurationSchema, TimestampSchema } from "@bufbuild/protobuf/wkt";
import { ConnectError, Code } from "@connectrpc/connect";
import { durationToProto, memory as memoryFromProto, timeFromProto } from "./convert.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";
import { MemorySchema } from "./gen/mnemo/v1/memory_pb.js";
import {
  CreateMemoryRequestSchema,
  ExportMemoriesResponseSchema,
  ImportOptionsSchema,
} from "./gen/mnemo/v1/memory_service_pb.js";
import { line } from "./jsonl.js";
import { double, MnemoError, RetryPolicy, WriteOp } from "./index.js";
import * as r from "./requests.js";
import { requestIdOf, resolveSettings } from "./settings.js";
import { fromValue, toValue } from "./values.js";

describe("requests", () => {
  test("every create option reaches the wire", () => {
    const expire = new Date(Date.UTC(2030, 0, 2, 3, 4, 5, 600));
    const request = r.createMemory("text", {
      userId: "u",
      agentId: "a",
      runId: "r",
      kind: "procedural",
      tags: ["t1", "t2"],
      metadata: { n: 1, f: 1.5, s: "x", b: false, z: null, l: [1], d: { k: "v" } },
      id: "m1",
      requestId: "req",
      dedup: { mode: "semantic", similarityThreshold: 0.8, merge: true },
      ttl: 90.5,
      embedding: [0.5, 0.25],
      embeddingModel: "mine",
      links: [{ targetId: "m2", relation: "rel", weight: 0.5 }],
      pinned: true,
    });
    const m = request.memory!;
    assert.deepEqual([m.content, m.userId, m.agentId, m.runId, m.id], ["text", "u", "a", "r", "m1"]);
    assert.equal(m.kind, 3);
    assert.deepEqual(m.tags, ["t1", "t2"]);
    assert.deepEqual(m.embedding, [0.5, 0.25]);
    assert.equal(m.embeddingModel, "mine");
    assert.ok(m.pinned);
    assert.equal(m.links[0]?.targetId, "m2");
    assert.equal(m.links[0]?.weight, 0.5);
    assert.deepEqual(m.metadata["n"]?.kind, { case: "intValue", value: 1n });
    assert.deepEqual(m.metadata["f"]?.kind, { case: "doubleValue", value: 1.5 });
    assert.equal(m.metadata["z"]?.kind.case, "nullValue");
    assert.equal(request.requestId, "req");
    assert.equal(request.ttl?.seconds, 90n);
    assert.equal(request.ttl?.nanos, 500_000_000);
    assert.equal(request.dedup?.mode, 3);
    assert.ok(Math.abs(request.dedup!.similarityThreshold - 0.8) < 1e-6);
    assert.ok(request.dedup?.merge);
    const withExpiry = r.createMemory("x", { expireTime: expire });
    assert.equal(withExpiry.memory?.expireTime?.seconds, BigInt(Math.floor(expire.getTime() / 1000)));
    assert.equal(withExpiry.memory?.expireTime?.nanos, 600_000_000);
    assert.equal(withExpiry.ttl, undefined);
  });

  test("defaults leave fields at their zero values, and the same inputs give the same bytes", () => {
    const a = r.createMemory("x", { userId: "u" });
    assert.equal(a.requestId, "");
    assert.equal(a.dedup, undefined);
    assert.equal(a.memory?.kind, 0);
    assert.equal(a.memory?.pinned, false);
    const b = r.createMemory("x", { userId: "u", kind: null, tags: null, metadata: null, pinned: null });
    assert.deepEqual(toBinary(CreateMemoryRequestSchema, a), toBinary(CreateMemoryRequestSchema, b));
    assert.equal(r.createMemory("x", { dedup: "exact" }).dedup?.mode, 2);
  });

  test("update masks exactly the options given; null clears", () => {
    assert.deepEqual(r.updateMemory("m", { content: "c" }).updateMask?.paths, ["content"]);
    assert.deepEqual(r.updateMemory("m").updateMask?.paths, []);
    const request = r.updateMemory("m", {
      content: "c",
      kind: "semantic",
      tags: null,
      metadata: { a: 1 },
      embedding: [1],
      expireTime: null,
      links: [],
      pinned: false,
      embeddingModel: "e",
      ttl: 5,
      etag: "E",
      requestId: "R",
    });
    assert.deepEqual(request.updateMask?.paths, [
      "content",
      "kind",
      "tags",
      "metadata",
      "embedding",
      "expire_time",
      "links",
      "pinned",
    ]);
    assert.equal(request.memory?.expireTime, undefined);
    assert.deepEqual(request.memory?.tags, []);
    assert.deepEqual([request.etag, request.requestId, request.ttl?.seconds], ["E", "R", 5n]);
    assert.deepEqual([request.memory?.id, request.memory?.embeddingModel], ["m", "e"]);
    // Call options are not fields.
    assert.deepEqual(r.updateMemory("m", { timeoutMs: 5 } as never).updateMask?.paths, []);
  });

  test("search, batch search, list, watch and admin requests", () => {
    const search = r.searchMemories("q", {
      vector: [1],
      userId: "u",
      agentId: "a",
      runId: "r",
      filter: "f",
      topK: 3,
      minScore: 0,
      includeEmbedding: true,
    });
    assert.deepEqual(
      [search.query, search.scope?.userId, search.scope?.runId, search.filter, search.topK],
      ["q", "u", "r", "f", 3],
    );
    assert.equal(search.minScore, 0);
    assert.ok(search.includeEmbedding);
    assert.deepEqual(search.vector, [1]);
    assert.equal(r.searchMemories("q").minScore, undefined);
    const hybrid = r.searchMemories("q", { mode: "hybrid", rrfK: 7 });
    assert.deepEqual([hybrid.mode, hybrid.rrfK], [3, 7]);
    assert.equal(r.searchMemories("q", { mode: "SEARCH_MODE_KEYWORD" }).mode, 2);
    assert.equal(r.searchMemories("q").rrfK, undefined);
    assert.equal(r.searchMemories("q").explain, false);
    assert.equal(r.searchMemories("q", { explain: true }).explain, true);
    const explained = r.batchSearchMemories(["a", { query: "b", explain: false }], { explain: true });
    assert.deepEqual(explained.requests.map((q) => q.explain), [true, false]);
    assert.throws(() => r.searchMemories("q", { mode: "fuzzy" }), /SearchMode/);
    const modes = r.batchSearchMemories(["a", { query: "b", mode: "vector" }], { mode: "keyword" });
    assert.deepEqual(modes.requests.map((q) => q.mode), [2, 1]);
    assert.ok(r.searchMemories("q").scope, "the scope is always set, as in Python");

    const batch = r.batchSearchMemories(["a", { query: "b", topK: 9, userId: "v" }], { userId: "u", topK: 2 });
    assert.deepEqual(
      batch.requests.map((x) => [x.query, x.topK, x.scope?.userId]),
      [
        ["a", 2, "u"],
        ["b", 9, "v"],
      ],
    );
    assert.throws(() => r.batchSearchMemories("ab" as never, {}), TypeError);

    const stream = [r.streamSearchMemories("a", {}, 0), r.streamSearchMemories({ query: "b", queryId: "q" }, {}, 1)];
    assert.deepEqual(
      stream.map((x) => x.queryId),
      ["0", "q"],
    );

    const listing = r.listMemories({ userId: "u", orderBy: "id", pageSize: 5, pageToken: "t", readMask: ["content"] });
    assert.deepEqual([listing.orderBy, listing.pageSize, listing.pageToken], ["id", 5, "t"]);
    assert.deepEqual(listing.readMask?.paths, ["content"]);
    assert.equal(r.listMemories().readMask, undefined);

    const watch = r.watchMemories({
      userId: "u",
      filter: "f",
      startRevision: 7,
      eventTypes: ["put", "expired"],
      progressInterval: 0.5,
    });
    assert.deepEqual(
      [watch.startRevision, watch.eventTypes, watch.progressInterval?.nanos],
      [7n, [1, 3], 500_000_000],
    );
    assert.equal(r.watchMemories().startRevision, undefined, "unset: live from now");
    assert.equal(r.watchMemories({ startRevision: 0 }).startRevision, 0n, "0: the whole log");

    const key = r.createApiKey("admin", { tenant: "t", userIds: ["u"], agentIds: ["a"], displayName: "n", ttl: 60 });
    assert.deepEqual(
      [key.role, key.tenant, key.userIds, key.displayName, key.ttl?.seconds],
      [3, "t", ["u"], "n", 60n],
    );
    const head = r.importMemoriesHead({ onConflict: "overwrite", forceReembed: true });
    assert.equal(head[0]?.item.case, "options");
    assert.deepEqual(head[0]?.item.value, create(ImportOptionsSchema, { onConflict: 2, forceReembed: true }));
    assert.equal(head[1]?.item.case === "header" && head[1].item.value.formatVersion, 1);
    assert.equal(r.importMemoriesHead().length, 1, "no options message without options");
    const fromJson = r.importMemoriesHead({ header: { formatVersion: 1, embeddingModel: "m", dimension: 8 } });
    assert.equal(fromJson[0]?.item.case === "header" && fromJson[0].item.value.embeddingModel, "m");
    const item = r.importMemoriesItem({ id: "x", userId: "u", content: "c", revision: "3" });
    assert.equal(item.item.case === "memory" && item.item.value.revision, 3n);

    const op = WriteOp.update("m", { pinned: true, requestId: "r" });
    assert.equal(op.raw.operation.case, "update");
    assert.deepEqual(op.raw.operation.case === "update" && op.raw.operation.value.updateMask?.paths, ["pinned"]);
    assert.equal(op.raw.operation.case === "update" && op.raw.operation.value.requestId, "r");
    const created = WriteOp.create("x").raw.operation;
    assert.equal(created.case === "create" && created.value.requestId, "", "no request id is made for an operation");

    const stats = r.getStats({ userId: "u", scopeLimit: 3 });
    assert.deepEqual([stats.scope?.userId, stats.scopeLimit], ["u", 3]);
    const reembed = r.reembedMemories({ filter: "f", force: true, dryRun: true });
    assert.deepEqual([reembed.filter, reembed.force, reembed.dryRun], ["f", true, true]);
    const keys = r.listApiKeys({ pageSize: 2, pageToken: "t", showRevoked: true, tenant: "acme" });
    assert.deepEqual([keys.pageSize, keys.pageToken, keys.showRevoked, keys.tenant], [2, "t", true, "acme"]);
    const forget = r.deleteMemories({ runId: "r", dryRun: true, requestId: "x" });
    assert.deepEqual([forget.scope?.runId, forget.dryRun, forget.requestId], ["r", true, "x"]);
  });

  test("client-side checks throw before any call", () => {
    assert.throws(() => r.createMemory("x", { tags: "tag" as never }), TypeError);
    assert.throws(() => r.createMemory("x", { kind: "sideways" }), {
      name: "RangeError",
      message: 'unknown MemoryKind "sideways"; expected one of episodic, semantic, procedural',
    });
    assert.throws(() => r.createMemory("x", { metadata: { when: new Date() } as never }), TypeError);
    assert.throws(() => r.createMemory("x", { metadata: { n: 2n ** 63n } }), RangeError);
    assert.throws(() => r.createMemory("x", { expireTime: "not a time" }), RangeError);
    assert.throws(() => r.watchMemories({ eventTypes: "put" as never }), TypeError);
  });
});

describe("times out of range", () => {
  // What a ttl of 10^12 s stored before the server checked times: year 33715.
  const far = () =>
    create(MemorySchema, {
      id: "far",
      userId: "u",
      content: "from far away",
      createTime: create(TimestampSchema, { seconds: -(10n ** 13n) }),
      updateTime: create(TimestampSchema, { seconds: 2n ** 62n, nanos: -5 }),
      expireTime: create(TimestampSchema, { seconds: 10n ** 12n + 1_700_000_000n }),
      lastRetrieveTime: create(TimestampSchema, { seconds: 1n, nanos: 2_000_000_000 }),
    });

  test("a Timestamp becomes a valid Date, clamped to 0001-01-01 .. 9999-12-31 as in Python", () => {
    const memory = memoryFromProto(far());
    assert.equal(memory.expireTime?.toISOString(), "9999-12-31T23:59:59.999Z");
    assert.equal(memory.updateTime?.toISOString(), "9999-12-31T23:59:59.999Z");
    assert.equal(memory.createTime?.toISOString(), "0001-01-01T00:00:00.000Z");
    assert.equal(memory.lastRetrieveTime?.toISOString(), "1970-01-01T00:00:01.999Z");
    const inRange = create(TimestampSchema, { seconds: 1_700_000_000n, nanos: 123_456_789 });
    assert.equal(timeFromProto(inRange)?.getTime(), 1_700_000_000_123);
  });

  test("an export line is written whatever the memory's times", () => {
    const message = create(ExportMemoriesResponseSchema, { item: { case: "memory", value: far() } });
    const memory = JSON.parse(line(message)).memory;
    assert.equal(memory.expireTime, "9999-12-31T23:59:59.999999999Z");
    assert.equal(memory.createTime, "0001-01-01T00:00:00Z");
    assert.equal(message.item.case === "memory" && message.item.value.expireTime?.seconds, 10n ** 12n + 1_700_000_000n);
  });
});

describe("values, enums and durations", () => {
  test("metadata values round-trip exactly", () => {
    const values = [null, true, false, 0, -(2n ** 63n), 2n ** 63n - 1n, 0.1, "", "ü", [], {}, [1, [2, { a: null }]]];
    for (const value of values) {
      assert.deepEqual(fromValue(toValue(value)), value);
    }
    assert.deepEqual(fromValue(toValue({ x: { y: [true, 1, 1.5] } })), { x: { y: [true, 1, 1.5] } });
    assert.equal(toValue(3).kind.case, "intValue");
    assert.equal(toValue(3.5).kind.case, "doubleValue");
    assert.equal(toValue(2 ** 60).kind.case, "doubleValue", "beyond the safe integers a number is a double");
    assert.equal(toValue(double(3)).kind.case, "doubleValue");
    assert.throws(() => toValue(undefined), TypeError);
  });

  test("enums accept their names in any form", () => {
    for (const form of ["semantic", "SEMANTIC", "MEMORY_KIND_SEMANTIC", "Memory_Kind_Semantic"]) {
      assert.equal(r.createMemory("x", { kind: form }).memory?.kind, 2);
    }
  });

  test("durations round like Python's round(seconds * 1e9), with the sign on both parts", () => {
    const d = (s: number) => {
      const x = durationToProto(s, "ttl");
      return [x.seconds, x.nanos];
    };
    assert.deepEqual(d(90.5), [90n, 500_000_000]);
    assert.deepEqual(d(-1.5), [-1n, -500_000_000]);
    assert.deepEqual(d(0.1), [0n, 100_000_000]);
    assert.deepEqual(d(2.5e-9), [0n, 2], "half to even");
    assert.deepEqual(d(3.5e-9), [0n, 4], "half to even");
    assert.deepEqual(durationToProto(1, "x"), create(DurationSchema, { seconds: 1n, nanos: 0 }));
  });

  test("request ids: the caller's, else 32 hex digits when enabled", () => {
    const on = resolveSettings("localhost:1", {});
    const off = resolveSettings("localhost:1", { autoRequestId: false });
    assert.match(requestIdOf(on, undefined)!, /^[0-9a-f]{32}$/);
    assert.notEqual(requestIdOf(on, null), requestIdOf(on, null));
    assert.equal(requestIdOf(on, ""), "");
    assert.equal(requestIdOf(on, "mine"), "mine");
    assert.equal(requestIdOf(off, undefined), null);
  });

  test("settings: address, timeouts and TLS resolve as in Python", () => {
    assert.equal(resolveSettings(null, {}).baseUrl, "http://localhost:50051");
    assert.equal(resolveSettings("h:1", { tls: true }).baseUrl, "https://h:1");
    assert.equal(resolveSettings("https://h:1", {}).tls, true);
    assert.equal(resolveSettings("h:1", {}).timeoutMs, 30_000);
    assert.equal(resolveSettings("h:1", { timeoutMs: null }).timeoutMs, null);
    assert.equal(resolveSettings("h:1", { timeoutMs: Infinity }).timeoutMs, null);
    assert.throws(() => resolveSettings("h:1", { timeoutMs: 0 }), RangeError);
    assert.deepEqual(resolveSettings("h:1", { metadata: [["X-A", "1"]] }).metadata, [["x-a", "1"]]);
  });
});

describe("errors and retry policy", () => {
  const status = create(StatusSchema, {
    code: 3,
    message: "filter: bad",
    details: [
      anyPack(ErrorInfoSchema, create(ErrorInfoSchema, { reason: "INVALID_FILTER", domain: "mnemo.dev", metadata: { request_id: "r1" } })),
      anyPack(
        BadRequestSchema,
        create(BadRequestSchema, { fieldViolations: [{ field: "filter", description: "bad", reason: "INVALID_FILTER" }] }),
      ),
      anyPack(RetryInfoSchema, create(RetryInfoSchema, { retryDelay: { seconds: 1n, nanos: 500_000_000 } })),
      create(AnySchema, { typeUrl: "type.googleapis.com/some.Other", value: new Uint8Array([1]) }),
    ],
  });

  test("a google.rpc.Status becomes a MnemoError with every detail decoded", () => {
    const err = MnemoError.fromStatus(status);
    assert.equal(err.code, "invalid_argument");
    assert.equal(err.grpcCode, 3);
    assert.equal(err.reason, "INVALID_FILTER");
    assert.equal(err.rawMessage, "filter: bad");
    assert.equal(err.message, "invalid_argument INVALID_FILTER: filter: bad");
    assert.deepEqual(err.fieldViolations, [{ field: "filter", description: "bad", reason: "INVALID_FILTER" }]);
    assert.equal(err.retryAfterMs, 1500);
    assert.equal(err.requestId, "r1");
    assert.deepEqual(err.metadata, { request_id: "r1" });
    assert.deepEqual(
      err.details.map((d) => d.$typeName),
      ["google.rpc.ErrorInfo", "google.rpc.BadRequest", "google.rpc.RetryInfo", "google.protobuf.Any"],
    );
    assert.ok(err instanceof Error);
    assert.equal(err.name, "MnemoError");
  });

  test("ConnectErrors convert, from the wire or not", () => {
    const wire = new ConnectError("nope", Code.NotFound);
    wire.details = [{ type: "google.rpc.ErrorInfo", value: toBinary(ErrorInfoSchema, create(ErrorInfoSchema, { reason: "MEMORY_NOT_FOUND" })) }];
    assert.deepEqual([MnemoError.from(wire).code, MnemoError.from(wire).reason], ["not_found", "MEMORY_NOT_FOUND"]);
    const refused = new ConnectError("connect failed", Code.Internal, undefined, undefined, Object.assign(new Error("x"), { code: "ECONNRESET" }));
    assert.equal(MnemoError.from(refused).code, "unavailable");
    assert.equal(MnemoError.from(new Error("boom")).code, "unknown");
    const mine = new MnemoError("m", { code: "aborted" });
    assert.equal(MnemoError.from(mine), mine);
  });

  test("the retry policy's backoff, as in Python", () => {
    const policy = new RetryPolicy({ jitter: 0 });
    assert.deepEqual([1, 2, 3, 10].map((n) => policy.backoff(n)), [100, 200, 400, 5000]);
    const limited = new MnemoError("", { code: "resource_exhausted", retryAfterMs: 1000 });
    const quota = new MnemoError("", { code: "resource_exhausted" });
    assert.equal(policy.delay(1, limited), 1000);
    assert.equal(policy.delay(1, quota), null);
    assert.equal(policy.delay(4, new MnemoError("", { code: "unavailable" })), null, "4 attempts by default");
    assert.equal(policy.delay(1, new MnemoError("", { code: "internal" })), null);
    const jittered = new RetryPolicy().backoff(1);
    assert.ok(jittered >= 100 && jittered <= 120);
    assert.throws(() => new RetryPolicy({ maxAttempts: 0 }), RangeError);
    assert.throws(() => new RetryPolicy({ multiplier: 0.5 }), RangeError);
  });
});
