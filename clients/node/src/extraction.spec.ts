// Extraction through the Node SDK: a real mnemo-server whose LLM is a fake
// OpenAI-compatible endpoint (and whose embedder is a fake one, so it starts
// in a second). Each LLM failure mode is tested on the Python side
// (server/tests/extraction); here: outcomes, operations and errors reach the caller.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { MnemoClient, MnemoError } from "./index.js";
import { FakeEmbedder } from "./testing/embedder.js";
import { FakeLlm, memories } from "./testing/llm.js";
import { MnemoServer } from "./testing/server.js";

let embedder: FakeEmbedder;
let llm: FakeLlm;
let server: MnemoServer;
let plain: MnemoServer;
let client: MnemoClient;
const user = () => `node-extract-${randomUUID().slice(0, 8)}`;

before(async () => {
  embedder = await FakeEmbedder.start();
  llm = await FakeLlm.start();
  [server, plain] = await Promise.all([
    MnemoServer.start({ args: [...embedder.serverArgs(), ...llm.serverArgs()] }),
    MnemoServer.start({ args: embedder.serverArgs() }),
  ]);
  client = new MnemoClient(server.address);
});

after(async () => {
  await client?.close();
  await Promise.all([server?.cleanup(), plain?.cleanup()]);
  await Promise.all([embedder?.close(), llm?.close()]);
});

async function failure(promise: Promise<unknown>): Promise<MnemoError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof MnemoError);
    return err;
  }
  assert.fail("the call succeeded");
}

test("extract adds the LLM's facts and reports each one", async () => {
  const uid = user();
  llm.reply = () => ({ content: memories("Likes black tea", "Lives in Lyon") });
  const op = await client.extract(
    [{ role: "user", content: "I drink black tea" }, { role: "assistant", content: "Nice", time: new Date() }],
    { userId: uid, metadata: { source: "chat" }, wait: true },
  );
  assert.equal(op.state, "SUCCEEDED");
  assert.ok(op.done && op.requestId);
  assert.deepEqual(op.facts.map((f) => [f.event, f.text]), [["ADDED", "Likes black tea"], ["ADDED", "Lives in Lyon"]]);
  assert.deepEqual(op.facts[0]!.memory!.metadata, { source: "chat" });
  assert.ok(llm.prompts.at(-1)!.includes("user: I drink black tea"));
  assert.deepEqual((await client.getOperation(op.id)).facts.map((f) => f.memory!.id), op.facts.map((f) => f.memory!.id));
  const listed = [];
  for await (const o of client.iterOperations({ userId: uid, pageSize: 1 })) listed.push(o.id);
  assert.deepEqual(listed, [op.id]);
  const again = await client.extract([{ role: "user", content: "black tea again" }], { userId: uid, wait: true });
  assert.deepEqual(again.facts.map((f) => f.event), ["UNCHANGED", "UNCHANGED"]);
});

test("a failed job says why in its operation", async () => {
  llm.reply = () => ({ status: 503 });
  const op = await client.extract([{ role: "user", content: "hello" }], { userId: user(), wait: true });
  assert.equal(op.state, "FAILED");
  assert.equal(op.errorReason, "LLM_UNAVAILABLE");
  assert.deepEqual(op.facts, []);
  const page = await client.listOperations({ state: "failed", pageSize: 50 });
  assert.ok(page.operations.some((o) => o.id === op.id));
});

test("bad input, unknown operations and servers without an LLM are errors", async () => {
  const bad = await failure(client.extract([{ role: "robot", content: "x" }], { userId: user() }));
  assert.equal(bad.code, "invalid_argument");
  assert.equal(bad.reason, "CONVERSATION_INVALID");
  assert.deepEqual(bad.fieldViolations.map((v) => v.field), ["messages[0].role"]);
  const missing = await failure(client.getOperation("0".repeat(32)));
  assert.equal(missing.reason, "OPERATION_NOT_FOUND");
  const other = new MnemoClient(plain.address);
  try {
    const off = await failure(other.extract([{ role: "user", content: "hi" }], { userId: user() }));
    assert.equal(off.reason, "EXTRACTION_NOT_CONFIGURED");
  } finally {
    await other.close();
  }
});
