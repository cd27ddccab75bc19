// Errors that need a server configured to produce them: a failing embedding
// endpoint (EMBEDDER_UNAVAILABLE, and the SDK's retries against a real server),
// a revision log compacted at once (REVISION_COMPACTED) and a tiny watch buffer
// (WATCH_TOO_SLOW, and the watch resuming by itself). The server is real; only
// its embedding model is a fake HTTP endpoint, so it starts in a second.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MnemoClient, MnemoError, WriteOp, type MemoryEvent } from "./index.js";
import { FakeEmbedder } from "./testing/embedder.js";
import { MnemoServer } from "./testing/server.js";
import { caughtUp } from "./testing/wait.js";

let embedder: FakeEmbedder;
let server: MnemoServer;
let client: MnemoClient;
const user = () => `node-edge-${randomUUID().slice(0, 8)}`;

before(async () => {
  embedder = await FakeEmbedder.start();
  server = await MnemoServer.start({
    args: [
      ...embedder.serverArgs(),
      "--lifecycle-feed-retention-s", "0.001",
      "--sweep-interval-s", "0.1",
      "--lifecycle-watch-buffer", "5",
    ],
  });
  client = new MnemoClient(server.address, { retry: { initialBackoffMs: 10 } });
});

after(async () => {
  await client?.close();
  await server?.cleanup();
  await embedder?.close();
});

async function failure(promise: Promise<unknown>): Promise<MnemoError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof MnemoError, `not a MnemoError: ${String(err)}`);
    return err;
  }
  assert.fail("the call succeeded");
}

describe("a failing embedder", () => {
  test("EMBEDDER_UNAVAILABLE reaches a caller that does not retry", async () => {
    const once = new MnemoClient(server.address, { retry: { maxAttempts: 1 } });
    try {
      embedder.failNext = 1;
      const error = await failure(once.create("cannot be embedded", { userId: user() }));
      assert.deepEqual([error.code, error.reason], ["unavailable", "EMBEDDER_UNAVAILABLE"]);
      embedder.failNext = 1;
      const search = await failure(once.search("cannot be embedded either"));
      assert.equal(search.reason, "EMBEDDER_UNAVAILABLE");
    } finally {
      embedder.failNext = 0;
      await once.close();
    }
  });

  test("a write is retried with its request id until the embedder answers, and applied once", async () => {
    const uid = user();
    const before = embedder.requests;
    embedder.failNext = 2;
    const created = await client.create("retried until embedded", { userId: uid });
    assert.equal(embedder.requests - before, 3, "two failures, then the answer");
    assert.equal(created.memory.embeddingModel, "fake-embedder");
    assert.deepEqual((await client.list({ userId: uid })).memories.map((m) => m.id), [created.memory.id]);
  });
});

describe("the change feed's limits", () => {
  test("REVISION_COMPACTED: a watch from a revision the log no longer holds", async () => {
    const uid = user();
    const first = (await client.create("old", { userId: uid })).memory;
    await client.create("newer", { userId: uid });
    await client.createSnapshot();
    await sleep(500); // upkeep compacts entries older than 1 ms, up to the snapshot
    const watch = client.watch({ userId: uid, startRevision: first.revision });
    const error = await failure(watch.next());
    assert.deepEqual([error.code, error.reason], ["out_of_range", "REVISION_COMPACTED"]);
    const oldest = Number(error.metadata["oldest_revision"]);
    assert.ok(oldest >= first.revision + 1);
    assert.equal((await client.getStats()).oldestRevision, oldest);
  });

  test("WATCH_TOO_SLOW: without reconnecting, the error says where to resume", async () => {
    const uid = user();
    const watch = client.watch({ userId: uid, reconnect: false });
    const dropped = failure(watch.next());
    await caughtUp(watch);
    await client.batchWrite(Array.from({ length: 10 }, (_, i) => WriteOp.create(`burst ${i}`, { userId: uid })));
    const error = await dropped;
    assert.deepEqual([error.code, error.reason], ["aborted", "WATCH_TOO_SLOW"]);
    assert.equal(watch.revision, Number(error.metadata["resume_revision"]));
  });

  test("WATCH_TOO_SLOW: a reconnecting watch resumes from the server's revision with no gap", async () => {
    const uid = user();
    const watch = client.watch({ userId: uid });
    const events: MemoryEvent[] = [];
    const reader = (async () => {
      for await (const event of watch) {
        events.push(event);
        if (events.length === 10) break;
      }
    })();
    await caughtUp(watch);
    const written = await client.batchWrite(
      Array.from({ length: 10 }, (_, i) => WriteOp.create(`burst ${i}`, { userId: uid })),
    );
    await reader;
    assert.deepEqual(
      events.map((e) => e.memory?.content),
      Array.from({ length: 10 }, (_, i) => `burst ${i}`),
    );
    assert.deepEqual(
      events.map((e) => e.revision),
      written.results.map((r) => r.revision),
    );
    assert.equal(watch.revision, written.revision);
  });
});
