// The package as a user gets it: `npm pack`, installed from the tarball into a
// scratch project, then loaded with both require() and import, and type-checked
// from a CommonJS and an ES module. Dependencies come from npm's cache.

import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const PACKAGE_DIR = fileURLToPath(new URL("..", import.meta.url));
const TSC = join(PACKAGE_DIR, "node_modules", "typescript", "bin", "tsc");
let scratch: string;
let installLog: string;

function run(command: string, args: string[], cwd: string): string {
  const result = spawnSync(command, args, { cwd, encoding: "utf-8" });
  assert.equal(result.status, 0, `${command} ${args.join(" ")}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout + result.stderr;
}

before(() => {
  scratch = mkdtempSync(join(tmpdir(), "mnemo-pack-"));
  // --ignore-scripts: dist/ is built already (prepack would rebuild it under the other tests).
  const packed = execFileSync("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", scratch], {
    cwd: PACKAGE_DIR,
    encoding: "utf-8",
    stdio: ["ignore", "pipe", "ignore"],
  });
  const tarball = join(scratch, (JSON.parse(packed) as { filename: string }[])[0]!.filename);
  writeFileSync(join(scratch, "package.json"), JSON.stringify({ name: "scratch", version: "1.0.0", private: true }));
  installLog = run(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=warn", tarball],
    scratch,
  );
});

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test("installing the tarball warns about no engine: the Node range is honest", () => {
  assert.doesNotMatch(installLog, /EBADENGINE/);
});

test("require() loads the package (CommonJS build)", () => {
  const out = run(
    process.execPath,
    [
      "-e",
      `const m = require("@mnemo/client");
       const c = new m.MnemoClient("localhost:1");
       const e = new m.MnemoError("x", { code: "not_found" });
       console.log(typeof m.MnemoClient, m.version, e instanceof Error, e.code, c.address);
       c.close();`,
    ],
    scratch,
  );
  assert.match(out, /^function \d+\.\d+\.\d+ true not_found localhost:1$/m);
});

test("import loads the package (ES module build)", () => {
  const out = run(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { MnemoClient, MnemoError, version } from "@mnemo/client";
       const c = new MnemoClient("localhost:1");
       console.log(typeof MnemoClient, version, new MnemoError("x", { code: "internal" }).code);
       await c.close();`,
    ],
    scratch,
  );
  assert.match(out, /^function \d+\.\d+\.\d+ internal$/m);
});

test("the declarations type-check from a CommonJS and an ES module", () => {
  const use = `const client = new MnemoClient("localhost:1");
const ok: Promise<void> = client.close();
export { ok };
`;
  writeFileSync(join(scratch, "use.cts"), `import { MnemoClient } from "@mnemo/client";\n${use}`);
  writeFileSync(join(scratch, "use.mts"), `import { MnemoClient } from "@mnemo/client";\n${use}`);
  run(
    process.execPath,
    [TSC, "--noEmit", "--strict", "--module", "nodenext", "--types", "node", "--typeRoots",
      join(PACKAGE_DIR, "node_modules", "@types"), "use.cts", "use.mts"],
    scratch,
  );
});
