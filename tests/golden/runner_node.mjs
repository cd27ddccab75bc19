// Runs the golden cases through the Node SDK's public methods.
//
//   node tests/golden/runner_node.mjs CASES.json ADDRESS OUT.json
//
// The twin of runner_python.py: the same steps, snake_case names turned into
// the SDK's camelCase, and each result written as the raw proto-JSON of its
// `raw` message (canonical.py compares the two by the same rules).
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const node = join(root, "clients", "node");
const sdk = await import(pathToFileURL(join(node, "dist", "index.js")).href);
// The same copy of @bufbuild/protobuf the SDK itself loads.
const protobuf = await import(
  pathToFileURL(join(node, "node_modules", "@bufbuild", "protobuf", "dist", "esm", "index.js")).href
);
const { MnemoClient, MnemoError, WriteOp, v1 } = sdk;

const registry = protobuf.createRegistry(
  ...Object.values(v1).filter((x) => x && typeof x === "object" && x.kind === "file"),
);

const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());

function camelKeys(object) {
  return Object.fromEntries(Object.entries(object).map(([k, v]) => [camel(k), v]));
}

function resolve(value, saved) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    if ("$onehot" in value) {
      const vector = new Array(value.dim ?? 384).fill(0);
      vector[value.$onehot] = 1;
      return vector;
    }
    if ("$int64" in value) return BigInt(value.$int64); // exact beyond 2**53
    if ("$ref" in value) {
      const [name, ...path] = value.$ref.split(".");
      let found = saved[name];
      for (const part of path) found = found[part];
      return value.as === "int" ? Number(found) : found;
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolve(v, saved)]));
  }
  if (Array.isArray(value)) return value.map((v) => resolve(v, saved));
  return value;
}

// SDK value types the YAML spells as plain maps; user data (metadata) keeps its keys.
function options(args) {
  const out = {};
  for (const [key, value] of Object.entries(args)) {
    if (key === "dedup" && value && typeof value === "object") out.dedup = camelKeys(value);
    else if (key === "links") out.links = value.map(camelKeys);
    else out[camel(key)] = value;
  }
  return out;
}

function buildArgs(call, args) {
  args = { ...args };
  if (call === "batch_search" || call === "stream_search") {
    args.queries = args.queries.map((q) => (typeof q === "string" ? q : options(q)));
  }
  if (call === "batch_write") {
    args.operations = args.operations.map((op) => {
      const [[kind, fields]] = Object.entries(op);
      const { [kind === "create" ? "content" : "id"]: first, ...rest } = fields;
      return WriteOp[kind](first, options(rest));
    });
  }
  return args;
}

const POSITIONAL = {
  create: "content", get: "id", update: "id", delete: "id", search: "query",
  batch_search: "queries", stream_search: "queries", batch_write: "operations",
  import_memories: "memories", history: "id", iter_history: "id", revoke_api_key: "id",
  create_api_key: "role", extract: "messages", get_operation: "id",
};

function toJson(result) {
  if (result === null || result === undefined || typeof result !== "object") return result ?? null;
  if (Array.isArray(result)) return result.map(toJson);
  const message = "$typeName" in result ? result : result.raw;
  if (!message || !("$typeName" in message)) throw new Error(`no raw message on ${JSON.stringify(result)}`);
  return protobuf.toJson(registry.getMessage(message.$typeName), message, { registry });
}

async function take(items, n) {
  const out = [];
  for await (const item of items) {
    out.push(item);
    if (n !== undefined && out.length >= n) break;
  }
  return out;
}

async function* asAsync(items) {
  yield* items;
}

async function runStep(client, step, saved) {
  const call = step.call;
  const args = buildArgs(call, resolve(step.args ?? {}, saved));
  const positional = POSITIONAL[call];
  let first;
  const hasFirst = positional !== undefined && positional in args;
  if (hasFirst) {
    first = args[positional];
    delete args[positional];
  }
  if (call === "stream_search") first = asAsync(first);
  const method = client[camel(call)].bind(client);
  const opts = call === "batch_write" || call === "batch_search" || call === "stream_search"
    ? options(args) : options(args);
  const result = hasFirst ? method(first, opts) : method(opts);
  if (call === "export") {
    const stream = await result;
    const header = await stream.header();
    const memories = await take(stream);
    return { header: toJson(header), memories: memories.map(toJson) };
  }
  if (call === "watch") {
    const watch = await result;
    try {
      return (await take(watch, step.take)).map(toJson);
    } finally {
      await watch.close();
    }
  }
  if (call === "stream_search") {
    const answers = (await take(result)).map(toJson);
    return answers.sort((a, b) => (a.queryId ?? "").localeCompare(b.queryId ?? ""));
  }
  if (result && typeof result[Symbol.asyncIterator] === "function" && !("then" in result)) {
    return (await take(result, step.take)).map(toJson);
  }
  return toJson(await result);
}

async function runCase(address, testCase) {
  const saved = {};
  const transcript = [];
  const client = new MnemoClient(address, { metadata: { "x-golden-case": testCase.name }, timeoutMs: 60_000 });
  try {
    for (const step of testCase.steps) {
      if ("sleep" in step) {
        await new Promise((r) => setTimeout(r, step.sleep * 1000));
        continue;
      }
      const entry = { call: step.call };
      try {
        entry.result = await runStep(client, step, saved);
      } catch (err) {
        if (!(err instanceof MnemoError)) throw err;
        entry.error = { code: err.code.toUpperCase(), reason: err.reason };
      }
      if (step.save) saved[step.save] = entry.result ?? null;
      transcript.push(entry);
    }
  } finally {
    await client.close();
  }
  return transcript;
}

const [casesPath, address, outPath] = process.argv.slice(2);
const cases = JSON.parse(readFileSync(casesPath, "utf8"));
const results = {};
for (const testCase of cases) results[testCase.name] = await runCase(address, testCase);
writeFileSync(outPath, JSON.stringify(results, null, 1));
