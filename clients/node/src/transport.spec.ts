// The client's own behaviour on the wire, against a fake server at the
// transport seam: retries and backoff with RetryInfo, request ids on retried
// writes, deadlines, cancellation, headers, gzip, TLS and mutual TLS.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { MnemoClient, MnemoError, RetryPolicy, WriteOp } from "./index.js";
import { ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { MemoryService } from "./gen/mnemo/v1/memory_service_pb.js";
import { makeCerts, startFakeServer, type FakeServer, type TestCerts } from "./testing/fake-server.js";

const DOMAIN = "mnemo.dev";

function failure(code: Code, reason: string, retryMs?: number, metadata: Record<string, string> = {}): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    { desc: ErrorInfoSchema, value: { reason, domain: DOMAIN, metadata } },
  ];
  if (retryMs !== undefined) {
    details.push({
      desc: RetryInfoSchema,
      value: { retryDelay: { seconds: BigInt(Math.floor(retryMs / 1000)), nanos: (retryMs % 1000) * 1e6 } },
    });
  }
  return new ConnectError(`failed with ${reason}`, code, undefined, details);
}

const memory = (id: string) => ({ id, userId: "u", content: `memory ${id}`, version: 1n, revision: 7n });

/** One fake server per test, with a handler script and what it saw. */
interface Seen {
  headers: Headers[];
  requestIds: string[];
  timeouts: (number | undefined)[];
}

async function serve(
  impl: (attempt: number, ctx: HandlerContext, seen: Seen) => unknown,
): Promise<{ server: FakeServer; seen: Seen }> {
  const seen: Seen = { headers: [], requestIds: [], timeouts: [] };
  const note = (ctx: HandlerContext) => {
    seen.headers.push(new Headers(ctx.requestHeader));
    seen.timeouts.push(ctx.timeoutMs());
    return seen.headers.length;
  };
  const server = await startFakeServer((router) =>
    router.service(MemoryService, {
      getMemory: async (req, ctx) => {
        await impl(note(ctx), ctx, seen);
        return { memory: memory(req.id) };
      },
      createMemory: async (req, ctx) => {
        seen.requestIds.push(req.requestId);
        await impl(note(ctx), ctx, seen);
        return { memory: { content: req.memory?.content ?? "", id: "m1", version: 1n } };
      },
      batchWriteMemories: async (req, ctx) => {
        seen.requestIds.push(req.requestId);
        await impl(note(ctx), ctx, seen);
        return { results: [], revision: 1n };
      },
      async *exportMemories(_req, ctx) {
        const attempt = note(ctx);
        await impl(attempt, ctx, seen);
        yield { item: { case: "header", value: { formatVersion: 1 } } };
        yield { item: { case: "memory", value: memory("a") } };
        if (attempt === 2) {
          throw failure(Code.Unavailable, "SERVER_DRAINING", 10);
        }
      },
    }),
  );
  return { server, seen };
}

const fast = new RetryPolicy({ initialBackoffMs: 5, maxBackoffMs: 20 });

describe("retries", () => {
  test("UNAVAILABLE is retried, waiting at least the RetryInfo delay", async () => {
    const { server, seen } = await serve((attempt) => {
      if (attempt <= 2) throw failure(Code.Unavailable, "SERVER_NOT_READY", 60);
    });
    const client = new MnemoClient(server.address, { retry: fast });
    try {
      const started = performance.now();
      const got = await client.get("m1");
      assert.equal(got.id, "m1");
      assert.equal(seen.headers.length, 3);
      assert.ok(performance.now() - started >= 120, "two waits of at least 60 ms");
    } finally {
      await client.close();
      await server.close();
    }
  });

  test("after maxAttempts the last error rejects, with its reason and retryAfterMs", async () => {
    const { server, seen } = await serve(() => {
      throw failure(Code.Unavailable, "EMBEDDER_UNAVAILABLE", 5);
    });
    const client = new MnemoClient(server.address, { retry: { maxAttempts: 3, initialBackoffMs: 1 } });
    try {
      const err: MnemoError = await client.get("m1").then(
        () => assert.fail("resolved"),
        (e: unknown) => e as MnemoError,
      );
      assert.ok(err instanceof MnemoError);
      assert.equal(err.code, "unavailable");
      assert.equal(err.reason, "EMBEDDER_UNAVAILABLE");
      assert.equal(err.retryAfterMs, 5);
      assert.equal(seen.headers.length, 3);
    } finally {
      await client.close();
      await server.close();
    }
  });

  test("RESOURCE_EXHAUSTED is retried only with RetryInfo (a rate limit, not a quota)", async () => {
    const rate = await serve((attempt) => {
      if (attempt === 1) throw failure(Code.ResourceExhausted, "RATE_LIMITED", 10);
    });
    const quota = await serve(() => {
      throw failure(Code.ResourceExhausted, "QUOTA_EXCEEDED");
    });
    const a = new MnemoClient(rate.server.address, { retry: fast });
    const b = new MnemoClient(quota.server.address, { retry: fast });
    try {
      await a.get("m1");
      assert.equal(rate.seen.headers.length, 2);
      await assert.rejects(b.get("m1"), { code: "resource_exhausted", reason: "QUOTA_EXCEEDED", retryAfterMs: null });
      assert.equal(quota.seen.headers.length, 1);
    } finally {
      await a.close();
      await b.close();
      await rate.server.close();
      await quota.server.close();
    }
  });

  test("other codes are not retried", async () => {
    const { server, seen } = await serve(() => {
      throw failure(Code.InvalidArgument, "INVALID_ID");
    });
    const client = new MnemoClient(server.address, { retry: fast });
    try {
      await assert.rejects(client.get("bad id"), { code: "invalid_argument", reason: "INVALID_ID" });
      assert.equal(seen.headers.length, 1);
    } finally {
      await client.close();
      await server.close();
    }
  });

  test("a write is retried with the request id filled in once; without one it is not retried", async () => {
    const failing = new Set([1, 3, 5, 6]);
    const { server, seen } = await serve((attempt) => {
      if (failing.has(attempt)) throw failure(Code.Unavailable, "SERVER_DRAINING", 1);
    });
    const client = new MnemoClient(server.address, { retry: fast });
    const manual = new MnemoClient(server.address, { retry: fast, autoRequestId: false });
    try {
      await client.create("x", { userId: "u" }); // attempts 1 (fails) and 2
      assert.equal(seen.requestIds.length, 2);
      assert.match(seen.requestIds[0]!, /^[0-9a-f]{32}$/);
      assert.equal(seen.requestIds[1], seen.requestIds[0]);

      await client.batchWrite([WriteOp.create("y", { userId: "u" })], { requestId: "batch-1" }); // 3, 4
      assert.deepEqual(seen.requestIds.slice(2), ["batch-1", "batch-1"]);

      await assert.rejects(client.create("x", { userId: "u", requestId: "" }), { code: "unavailable" }); // 5
      await assert.rejects(manual.create("x", { userId: "u" }), { code: "unavailable" }); // 6
      assert.deepEqual(seen.requestIds.slice(4), ["", ""]);
    } finally {
      await client.close();
      await manual.close();
      await server.close();
    }
  });

  test("retries never outlive the call's deadline, which goes on the wire", async () => {
    const { server, seen } = await serve(() => {
      throw failure(Code.Unavailable, "SERVER_NOT_READY", 400);
    });
    const client = new MnemoClient(server.address, { retry: { maxAttempts: 10 } });
    try {
      const started = performance.now();
      // The server asks for 400 ms, longer than the 300 ms left: fail now, not at the deadline.
      await assert.rejects(client.get("m1", { timeoutMs: 300 }), { code: "unavailable", retryAfterMs: 400 });
      assert.ok(performance.now() - started < 300);
      assert.equal(seen.headers.length, 1);
      assert.ok(seen.timeouts[0]! > 0 && seen.timeouts[0]! <= 300, `timeout ${seen.timeouts[0]}`);
    } finally {
      await client.close();
      await server.close();
    }
  });

  test("the client's default deadline applies to unary calls: DEADLINE_EXCEEDED", async () => {
    const { server } = await serve(async (_attempt, ctx) => {
      await new Promise((resolve) => setTimeout(resolve, 2000).unref());
      ctx.signal.throwIfAborted();
    });
    const client = new MnemoClient(server.address, { timeoutMs: 150 });
    try {
      await assert.rejects(client.get("m1"), { code: "deadline_exceeded", reason: "" });
    } finally {
      await client.close();
      await server.close();
    }
  });

  test("an AbortSignal cancels a retry wait at once", async () => {
    const { server } = await serve(() => {
      throw failure(Code.Unavailable, "SERVER_NOT_READY", 5000);
    });
    const client = new MnemoClient(server.address);
    try {
      const started = performance.now();
      await assert.rejects(client.get("m1", { signal: AbortSignal.timeout(100) }), { code: "cancelled" });
      assert.ok(performance.now() - started < 1000);
    } finally {
      await client.close();
      await server.close();
    }
  });

  test("50 concurrent calls on one client, sharing one signal, raise no MaxListenersExceededWarning", async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on("warning", onWarning);
    const { server } = await serve(() => new Promise((resolve) => setTimeout(resolve, 50)));
    const client = new MnemoClient(server.address);
    try {
      const shared = new AbortController();
      const calls = (signal?: AbortSignal) =>
        Promise.all(Array.from({ length: 50 }, (_, i) => client.get(`m${i}`, { signal })));
      assert.equal((await calls()).length, 50);
      assert.equal((await calls(shared.signal)).length, 50);
      // The shared signal still cancels every call in flight.
      const cancelled = calls(shared.signal);
      setTimeout(() => shared.abort(), 10);
      await assert.rejects(cancelled, { code: "cancelled" });
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(warnings, []);
    } finally {
      process.off("warning", onWarning);
      await client.close();
      await server.close();
    }
  });

  test("a server stream is retried before its first message, not after", async () => {
    const { server, seen } = await serve((attempt) => {
      if (attempt === 1) throw failure(Code.Unavailable, "SERVER_NOT_READY", 1);
    });
    const client = new MnemoClient(server.address, { retry: fast });
    try {
      const stream = client.export();
      assert.equal((await stream.header()).formatVersion, 1);
      const ids: string[] = [];
      await assert.rejects(
        (async () => {
          for await (const m of stream) ids.push(m.id);
        })(),
        { code: "unavailable", reason: "SERVER_DRAINING" },
      );
      assert.deepEqual(ids, ["a"]);
      assert.equal(seen.headers.length, 2);
    } finally {
      await client.close();
      await server.close();
    }
  });

  test("an INTERNAL error keeps the server's request id", async () => {
    const { server } = await serve(() => {
      throw failure(Code.Internal, "INTERNAL", undefined, { request_id: "req-42" });
    });
    const client = new MnemoClient(server.address);
    try {
      await assert.rejects(client.get("m1"), (err: MnemoError) => {
        assert.equal(err.code, "internal");
        assert.equal(err.grpcCode, 13);
        assert.equal(err.requestId, "req-42");
        assert.equal(err.message, "internal INTERNAL: failed with INTERNAL");
        return true;
      });
    } finally {
      await client.close();
      await server.close();
    }
  });

  test("UNIMPLEMENTED: a call the server lacks, or one it does not implement yet (NOT_IMPLEMENTED)", async () => {
    const { server } = await serve(() => {
      throw failure(Code.Unimplemented, "NOT_IMPLEMENTED");
    });
    const client = new MnemoClient(server.address);
    try {
      await assert.rejects(client.get("m1"), { code: "unimplemented", reason: "NOT_IMPLEMENTED", grpcCode: 12 });
      await assert.rejects(client.createApiKey("admin"), { code: "unimplemented", reason: "" });
    } finally {
      await client.close();
      await server.close();
    }
  });

  test("no server listening is UNAVAILABLE with an empty reason", async () => {
    const { server } = await serve(() => undefined);
    const address = server.address;
    await server.close();
    const client = new MnemoClient(address, { retry: { maxAttempts: 2, initialBackoffMs: 1 } });
    try {
      await assert.rejects(client.get("m1"), { code: "unavailable", reason: "" });
    } finally {
      await client.close();
    }
  });

  test("closing the client cancels a call in flight", async () => {
    const { server } = await serve(() => new Promise((resolve) => setTimeout(resolve, 3000).unref()));
    const client = new MnemoClient(server.address);
    try {
      const call = client.get("m1");
      setTimeout(() => void client.close(), 50);
      await assert.rejects(call, { code: "cancelled" });
    } finally {
      await server.close();
    }
  });
});

describe("headers and compression", () => {
  let server: FakeServer;
  let seen: Seen;
  before(async () => ({ server, seen } = await serve(() => undefined)));
  after(() => server.close());

  test("the API key, the client's metadata, per-call headers and the user agent are sent", async () => {
    const client = new MnemoClient(server.address, {
      apiKey: "secret-key",
      metadata: { "X-Team": "search" },
    });
    try {
      await client.get("m1", { headers: { "x-golden-case": "case-1" } });
      const headers = seen.headers.at(-1)!;
      assert.equal(headers.get("authorization"), "Bearer secret-key");
      assert.equal(headers.get("x-team"), "search");
      assert.equal(headers.get("x-golden-case"), "case-1");
      assert.match(headers.get("user-agent") ?? "", /^mnemo-node\/0\.1\.0 connect-es\//);
      // The raw stub goes through the same transport, so it carries the key too.
      await client.stub.getMemory({ id: "m1" });
      assert.equal(seen.headers.at(-1)!.get("authorization"), "Bearer secret-key");
    } finally {
      await client.close();
    }
  });

  test("MNEMO_API_KEY is the default key, and an empty key sends none", async () => {
    process.env["MNEMO_API_KEY"] = "from-env";
    try {
      const fromEnv = new MnemoClient(server.address);
      const none = new MnemoClient(server.address, { apiKey: "" });
      await fromEnv.get("m1");
      assert.equal(seen.headers.at(-1)!.get("authorization"), "Bearer from-env");
      await none.get("m1");
      assert.equal(seen.headers.at(-1)!.get("authorization"), null);
      await fromEnv.close();
      await none.close();
    } finally {
      delete process.env["MNEMO_API_KEY"];
    }
  });

  test("MNEMO_ADDRESS is the default address", async () => {
    process.env["MNEMO_ADDRESS"] = server.address;
    try {
      const client = new MnemoClient();
      assert.equal(client.address, server.address);
      assert.equal((await client.get("m1")).id, "m1");
      await client.close();
    } finally {
      delete process.env["MNEMO_ADDRESS"];
    }
  });

  test("gzip compresses requests", async () => {
    const client = new MnemoClient(server.address, { gzip: true, keepaliveTimeMs: 10_000, keepaliveTimeoutMs: 5000 });
    const plain = new MnemoClient(server.address);
    try {
      await client.get("m1");
      assert.equal(seen.headers.at(-1)!.get("grpc-encoding"), "gzip");
      await plain.get("m1");
      assert.equal(seen.headers.at(-1)!.get("grpc-encoding"), null);
    } finally {
      await client.close();
      await plain.close();
    }
  });
});

describe("TLS", () => {
  let certs: TestCerts;
  before(() => {
    certs = makeCerts();
  });
  after(() => certs.cleanup());

  test("a CA file implies TLS; tlsServerName checks the certificate's name", async () => {
    const server = await startFakeServer(
      (router) => router.service(MemoryService, { getMemory: (req) => ({ memory: memory(req.id) }) }),
      { key: certs.serverKey, cert: certs.serverCert },
    );
    const byIp = new MnemoClient(server.address, { caFile: join(certs.dir, "ca.pem") });
    const byName = new MnemoClient(`localhost:${server.port}`, { caFile: certs.ca, tlsServerName: "mnemo.test" });
    const wrongName = new MnemoClient(`localhost:${server.port}`, {
      caFile: certs.ca,
      retry: { maxAttempts: 1 },
    });
    const untrusted = new MnemoClient(server.address, { tls: true, retry: { maxAttempts: 1 } });
    try {
      assert.equal((await byIp.get("m1")).id, "m1");
      assert.equal((await byName.get("m2")).id, "m2");
      await assert.rejects(wrongName.get("m1"), { code: "unavailable" });
      await assert.rejects(untrusted.get("m1"), { code: "unavailable" });
    } finally {
      for (const c of [byIp, byName, wrongName, untrusted]) await c.close();
      await server.close();
    }
  });

  test("mutual TLS: the server accepts only a client with a certificate", async () => {
    const server = await startFakeServer(
      (router) => router.service(MemoryService, { getMemory: (req) => ({ memory: memory(req.id) }) }),
      { key: certs.serverKey, cert: certs.serverCert, clientCa: certs.ca },
    );
    const withCert = new MnemoClient(server.address, {
      caFile: join(certs.dir, "ca.pem"),
      certFile: join(certs.dir, "client.pem"),
      keyFile: join(certs.dir, "client-key.pem"),
    });
    const without = new MnemoClient(server.address, { caFile: certs.ca, retry: { maxAttempts: 1 } });
    try {
      assert.equal((await withCert.get("m1")).id, "m1");
      await assert.rejects(without.get("m1"), { code: "unavailable" });
    } finally {
      await withCert.close();
      await without.close();
      await server.close();
    }
  });

  test("certFile and keyFile go together", () => {
    assert.throws(() => new MnemoClient("localhost:1", { certFile: certs.clientCert }), TypeError);
  });
});
