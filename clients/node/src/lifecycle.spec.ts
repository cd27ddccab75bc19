// The client across a real server's life: calls made while it still loads
// (SERVER_NOT_READY, retried with RetryInfo until it serves), a watch that
// survives the server being killed and restarted on the same data and port
// with no gap and no duplicate, and SERVER_DRAINING when it shuts down.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MnemoClient, MnemoError, type MemoryEvent } from "./index.js";
import { MnemoServer } from "./testing/server.js";

const servers: MnemoServer[] = [];
const clients: MnemoClient[] = [];
const user = () => `node-life-${randomUUID().slice(0, 8)}`;

after(async () => {
  for (const c of clients) await c.close();
  for (const s of servers.reverse()) await s.cleanup();
});

function connect(address: string, options: ConstructorParameters<typeof MnemoClient>[1] = {}): MnemoClient {
  const client = new MnemoClient(address, options);
  clients.push(client);
  return client;
}

async function failure(promise: Promise<unknown>): Promise<MnemoError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof MnemoError, `not a MnemoError: ${String(err)}`);
    return err;
  }
  assert.fail("the call succeeded");
}

let server: MnemoServer;

test("while the server loads, calls get SERVER_NOT_READY and are retried until it serves", async () => {
  server = await MnemoServer.start({ until: "listening" });
  servers.push(server);
  const impatient = connect(server.address, { retry: { maxAttempts: 1 } });
  const patient = connect(server.address, { retry: { maxAttempts: 60 }, timeoutMs: 120_000 });
  const error = await failure(impatient.getStats());
  assert.deepEqual([error.code, error.reason], ["unavailable", "SERVER_NOT_READY"]);
  assert.equal(error.retryAfterMs, 1000);
  assert.equal(await impatient.health(), "NOT_SERVING");
  const stats = await patient.getStats();
  assert.equal(stats.dimension, 384);
  assert.equal(await impatient.health(), "SERVING");
});

test("a watch resumes after the server is killed and restarted, with no gap and no duplicate", async () => {
  const client = connect(server.address, { retry: { maxAttempts: 60 }, timeoutMs: 120_000 });
  const uid = user();
  const start = (await client.create("before the watch", { userId: uid })).memory;
  const watch = client.watch({ userId: uid, startRevision: start.revision });
  const events: MemoryEvent[] = [];
  let arrived: () => void = () => {};
  const reader = (async () => {
    for await (const event of watch) {
      events.push(event);
      arrived();
      if (events.length === 6) break;
    }
  })();
  const waitFor = async (n: number) => {
    while (events.length < n) await new Promise<void>((resolve) => (arrived = resolve));
  };

  for (const text of ["a", "b"]) await client.create(text, { userId: uid });
  await waitFor(2);

  const { port, dataDir } = server;
  await server.kill("SIGKILL");
  server = await MnemoServer.start({ dataDir, port });
  servers.push(server);
  // Written while the watch is still reconnecting: replayed from the log.
  for (const text of ["c", "d"]) await client.create(text, { userId: uid });
  await waitFor(4);
  // Written once it is live again.
  for (const text of ["e", "f"]) await client.create(text, { userId: uid });
  await reader;

  assert.deepEqual(
    events.map((e) => e.memory?.content),
    ["a", "b", "c", "d", "e", "f"],
  );
  const revisions = events.map((e) => e.revision);
  assert.ok(revisions.every((r, i) => i === 0 || r > revisions[i - 1]!), `revisions ${revisions}`);
  assert.equal(watch.revision, revisions.at(-1));
});

test("a server shutting down ends watches with SERVER_DRAINING and where to resume", async () => {
  const client = connect(server.address);
  const uid = user();
  const last = (await client.create("seen", { userId: uid })).memory;
  const watch = client.watch({ userId: uid, startRevision: last.revision - 1, reconnect: false });
  assert.equal(((await watch.next()).value as MemoryEvent).revision, last.revision);
  const drained = failure(watch.next());
  await sleep(200);
  await server.kill("SIGTERM");
  const error = await drained;
  assert.deepEqual([error.code, error.reason], ["unavailable", "SERVER_DRAINING"]);
  assert.ok(Number(error.metadata["resume_revision"]) >= last.revision);
  assert.equal(watch.revision, Number(error.metadata["resume_revision"]));
});
