// The README's examples run against a real server (with a fake embedding
// endpoint, so that it starts in a second): the quick start and the streams,
// as one program, exactly as written but for the package name.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";
import { FakeEmbedder } from "./testing/embedder.js";
import { MnemoServer } from "./testing/server.js";

let embedder: FakeEmbedder;
let server: MnemoServer;

before(async () => {
  embedder = await FakeEmbedder.start();
  server = await MnemoServer.start({ args: embedder.serverArgs() });
});

after(async () => {
  await server?.cleanup();
  await embedder?.close();
});

function blocks(): string[] {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf-8");
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
}

test("the quick start and the streams examples run", async () => {
  const all = blocks();
  const quick = all.find((b) => b.includes("new MnemoClient();"));
  const streams = all.find((b) => b.includes("client.streamSearch("));
  assert.ok(quick && streams, "the README has both examples");
  const index = new URL("./index.js", import.meta.url).href;
  const program = (quick + streams).replaceAll('"@mnemo/client"', JSON.stringify(index));
  const dir = mkdtempSync(join(tmpdir(), "mnemo-readme-"));
  const file = join(dir, "readme-example.mjs");
  writeFileSync(file, program);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [file], {
      env: { ...process.env, MNEMO_ADDRESS: server.address, MNEMO_API_KEY: "" },
      timeout: 60_000,
    });
    assert.match(stdout, /Alice prefers green tea/);
    assert.match(stdout, /^not_found$/m);
    assert.match(stdout, /^DELETE /m);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("every example type-checks against the package's declarations in strict mode", async () => {
  const ts = (await import("typescript")).default;
  const all = blocks();
  const quick = all.find((b) => b.includes("new MnemoClient();")) ?? "";
  const programs = [quick + all.filter((b) => b !== quick).find((b) => b.includes("client.streamSearch("))]
    .concat(all.filter((b) => b !== quick && !b.includes("client.streamSearch(")));
  const dir = mkdtempSync(join(tmpdir(), "mnemo-readme-"));
  const index = JSON.stringify(fileURLToPath(new URL("./index.js", import.meta.url)));
  try {
    const files = programs.map((code, i) => {
      const file = join(dir, `example-${i}.mts`);
      writeFileSync(file, `${code.replaceAll('"@mnemo/client"', index)}\nexport {};\n`);
      return file;
    });
    const program = ts.createProgram(files, {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: ["node"],
      typeRoots: [fileURLToPath(new URL("../node_modules/@types", import.meta.url))],
      skipLibCheck: true,
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .map((d) => `${d.file?.fileName ?? ""}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`);
    assert.deepEqual(problems, []);
    assert.equal(files.length, all.length - 1, "every block is checked");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
