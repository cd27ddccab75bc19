// A real server with authentication, mutual TLS, rate and stream limits and a
// memory quota: the client's credentials on the wire and every error reason of
// access control and limits. (Its embedding model is a fake HTTP endpoint, so
// it starts in a second; the TLS certificates are made with openssl.)

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MnemoClient, MnemoError, type ClientOptions } from "./index.js";
import { FakeEmbedder } from "./testing/embedder.js";
import { makeCerts, type TestCerts } from "./testing/fake-server.js";
import { MnemoServer } from "./testing/server.js";
import { caughtUp, until } from "./testing/wait.js";

const BOOTSTRAP = `node-test-bootstrap-${randomUUID()}`;
let certs: TestCerts;
let embedder: FakeEmbedder;
let server: MnemoServer;
let admin: MnemoClient;
const clients: MnemoClient[] = [];
const tenant = () => `t-${randomUUID().slice(0, 8)}`;

function connect(options: ClientOptions = {}): MnemoClient {
  const client = new MnemoClient(server.address, {
    caFile: join(certs.dir, "ca.pem"),
    certFile: join(certs.dir, "client.pem"),
    keyFile: join(certs.dir, "client-key.pem"),
    apiKey: "",
    ...options,
  });
  clients.push(client);
  return client;
}

before(async () => {
  certs = makeCerts();
  embedder = await FakeEmbedder.start();
  server = await MnemoServer.start({
    args: [
      ...embedder.serverArgs(),
      "--auth-enabled", "on",
      "--auth-bootstrap-key", BOOTSTRAP,
      "--tls-cert-file", join(certs.dir, "server.pem"),
      "--tls-key-file", join(certs.dir, "server-key.pem"),
      "--tls-client-ca-file", join(certs.dir, "ca.pem"),
      "--rate-limit-requests-per-s", "50",
      "--rate-limit-burst", "50",
      "--rate-limit-max-streams", "2",
      "--quota-max-memories", "3",
    ],
  });
  admin = connect({ apiKey: BOOTSTRAP });
});

after(async () => {
  for (const c of clients) await c.close();
  await server?.cleanup();
  await embedder?.close();
  certs?.cleanup();
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

/** A client holding a fresh key of `role` in `tenantId`, made by the bootstrap admin. */
async function keyed(role: string, tenantId: string, extra: { userIds?: string[] } = {}, options: ClientOptions = {}) {
  const created = await admin.createApiKey(role, { tenant: tenantId, ...extra });
  return { client: connect({ ...options, apiKey: created.secret }), key: created.apiKey };
}

describe("credentials", () => {
  test("mutual TLS with the bootstrap key serves", async () => {
    assert.equal(await admin.health(), "SERVING");
    assert.ok((await admin.getStats()).revision >= 0);
  });

  test("no key is API_KEY_MISSING; an unknown key is API_KEY_INVALID", async () => {
    const missing = await failure(connect().list());
    assert.deepEqual([missing.code, missing.reason], ["unauthenticated", "API_KEY_MISSING"]);
    const invalid = await failure(connect({ apiKey: "mnemo_nope_0000" }).list());
    assert.deepEqual([invalid.code, invalid.reason], ["unauthenticated", "API_KEY_INVALID"]);
  });

  test("without a client certificate the server refuses the connection", async () => {
    const client = new MnemoClient(server.address, { caFile: certs.ca, apiKey: BOOTSTRAP, retry: { maxAttempts: 1 } });
    clients.push(client);
    const error = await failure(client.list());
    assert.deepEqual([error.code, error.reason], ["unavailable", ""]);
  });
});

describe("keys, roles and scopes", () => {
  test("a writer restricted to a user: SCOPE_FORBIDDEN beyond it, ROLE_FORBIDDEN for admin calls", async () => {
    const t = tenant();
    const { client: writer } = await keyed("writer", t, { userIds: ["alice"] });
    const memory = (await writer.create("alice's memory", { userId: "alice" })).memory;
    assert.equal((await writer.get(memory.id)).content, "alice's memory");
    const scope = await failure(writer.create("bob's memory", { userId: "bob" }));
    assert.deepEqual([scope.code, scope.reason], ["permission_denied", "SCOPE_FORBIDDEN"]);
    const role = await failure(writer.getStats());
    assert.deepEqual([role.code, role.reason], ["permission_denied", "ROLE_FORBIDDEN"]);
    const { client: reader } = await keyed("reader", t);
    assert.equal((await reader.list({ userId: "alice" })).memories.length, 1);
    const readOnly = await failure(reader.create("no", { userId: "alice" }));
    assert.deepEqual([readOnly.code, readOnly.reason], ["permission_denied", "ROLE_FORBIDDEN"]);
    const keys = await failure(reader.createApiKey("reader"));
    assert.equal(keys.reason, "ROLE_FORBIDDEN");
  });

  test("a key restricted to users cannot choose ids: MEMORY_ID_FORBIDDEN whether the id is taken or free", async () => {
    const t = tenant();
    const { client: writer } = await keyed("writer", t);
    const taken = (await writer.create("a chosen id", { userId: "bob", id: "chosen-taken" })).memory;
    const { client: restricted } = await keyed("writer", t, { userIds: ["alice"] });
    for (const id of [taken.id, "chosen-free"]) {
      const error = await failure(restricted.create("mine", { userId: "alice", id }));
      assert.deepEqual([error.code, error.reason], ["permission_denied", "MEMORY_ID_FORBIDDEN"]);
    }
    const assigned = (await restricted.create("mine", { userId: "alice" })).memory;
    assert.notEqual(assigned.id, "chosen-free");
  });

  test("a tenant's admin lists and revokes its keys; a revoked key stops working; tenants are apart", async () => {
    const t = tenant();
    const { client: tenantAdmin, key: adminKey } = await keyed("admin", t);
    const { client: writer, key: writerKey } = await keyed("writer", t);
    const memory = (await writer.create("tenant memory", { userId: "u" })).memory;
    const { client: stranger } = await keyed("admin", tenant());
    const hidden = await failure(stranger.get(memory.id));
    assert.deepEqual([hidden.code, hidden.reason], ["not_found", "MEMORY_NOT_FOUND"]);

    const listed = [];
    for await (const key of tenantAdmin.iterApiKeys({ pageSize: 1 })) listed.push(key.id);
    assert.deepEqual(listed.sort(), [adminKey.id, writerKey.id].sort());
    const revoked = await tenantAdmin.revokeApiKey(writerKey.id);
    assert.ok(revoked.revokeTime instanceof Date);
    const gone = await failure(writer.get(memory.id));
    assert.deepEqual([gone.code, gone.reason], ["unauthenticated", "API_KEY_INVALID"]);
    const notMine = await failure(stranger.revokeApiKey(adminKey.id));
    assert.deepEqual([notMine.code, notMine.reason], ["not_found", "API_KEY_NOT_FOUND"]);
  });
});

describe("limits", () => {
  test("QUOTA_EXCEEDED: a tenant at its quota cannot create more, and the SDK does not retry it", async () => {
    const { client } = await keyed("writer", tenant());
    for (const text of ["one", "two", "three"]) await client.create(text, { userId: "u" });
    const before = embedder.requests;
    const error = await failure(client.create("four", { userId: "u" }));
    assert.deepEqual([error.code, error.reason, error.retryAfterMs], ["resource_exhausted", "QUOTA_EXCEEDED", null]);
    assert.ok(embedder.requests - before <= 1, "tried once");
  });

  test("RATE_LIMITED carries RetryInfo; the SDK waits as told and retries", async () => {
    const t = tenant();
    const { client: impatient } = await keyed("reader", t, {}, { retry: { maxAttempts: 1 } });
    // 120 calls at once against a bucket of 50 (refilled at 50 a second).
    const burst = await Promise.allSettled(Array.from({ length: 120 }, () => impatient.list({ userId: "u" })));
    const limited = burst
      .filter((r): r is PromiseRejectedResult => r.status === "rejected")
      .map((r) => r.reason as MnemoError);
    assert.ok(limited.length >= 1 && limited.length < 120, `${limited.length} limited`);
    for (const error of limited) {
      assert.deepEqual([error.code, error.reason], ["resource_exhausted", "RATE_LIMITED"]);
      assert.ok(error.retryAfterMs !== null && error.retryAfterMs > 0);
    }
    await sleep(1100); // the bucket fills again
    const { client: patient } = await keyed("reader", t, {}, { retry: { maxAttempts: 30, initialBackoffMs: 10 } });
    const pages = await Promise.all(Array.from({ length: 80 }, () => patient.list({ userId: "u" })));
    assert.equal(pages.length, 80);
  });

  test("TOO_MANY_STREAMS: a key may hold only so many open streams", async () => {
    const { client } = await keyed("reader", tenant());
    const first = client.watch({ userId: "u" });
    const second = client.watch({ userId: "u" });
    const open = [first.next(), second.next()];
    await Promise.all([caughtUp(first), caughtUp(second)]);
    const error = await failure(client.watch({ userId: "u" }).next());
    assert.deepEqual([error.code, error.reason], ["resource_exhausted", "TOO_MANY_STREAMS"]);
    await first.close();
    // Once the server has seen the cancel, the key may open a stream again.
    let third = client.watch({ userId: "u" });
    let pending = third.next();
    for (let tries = 0; ; tries++) {
      let refused: unknown = null;
      pending.catch((e: unknown) => (refused = e));
      await until(() => third.revision !== null || refused !== null, "the third watch to open or fail");
      if (refused === null) break;
      assert.ok(refused instanceof MnemoError && refused.reason === "TOO_MANY_STREAMS" && tries < 50, String(refused));
      await sleep(100);
      third = client.watch({ userId: "u" });
      pending = third.next();
    }
    await Promise.all([second.close(), third.close()]);
    assert.deepEqual(await Promise.all([...open, pending]), [
      { done: true, value: undefined },
      { done: true, value: undefined },
      { done: true, value: undefined },
    ]);
  });
});
