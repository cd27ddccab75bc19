// The test harness: a real mnemo-server subprocess on a free port with its own
// data directory, started and killed by the tests. Not part of the package.
//
// The Python interpreter is $MNEMO_PYTHON, else the repository's .venv.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, found from this file (dist/testing/ or src/testing/). */
export const REPO_ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
export const PYTHON = process.env["MNEMO_PYTHON"] || join(REPO_ROOT, ".venv", "bin", "python");

export interface ServerOptions {
  /** The data directory; a fresh temporary one when not given (removed by `cleanup`). */
  dataDir?: string;
  /** The port; a free one when not given. */
  port?: number;
  /** Extra mnemo-server flags. */
  args?: readonly string[];
  /** Resolve as soon as the port is open ("listening"), or once it serves (the default). */
  until?: "listening" | "serving";
}

const STARTUP_MS = 120_000;
const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) {
    child.kill("SIGKILL");
  }
});

export class MnemoServer {
  readonly dataDir: string;
  port = 0;
  private lines: string[] = [];
  private serving: Promise<void>;
  private exited: Promise<number | null>;
  private readonly ownsDir: boolean;
  readonly child: ChildProcess;

  private constructor(options: ServerOptions) {
    this.ownsDir = options.dataDir === undefined;
    this.dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "mnemo-node-"));
    const args = [
      "-m",
      "mnemo_server",
      "--address",
      `127.0.0.1:${options.port ?? 0}`,
      "--data-dir",
      this.dataDir,
      "--index-snapshot-interval-s",
      "0",
      ...(options.args ?? []),
    ];
    this.child = spawn(PYTHON, args, {
      env: { ...process.env, HF_HUB_OFFLINE: "1", PYTHONUNBUFFERED: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    live.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.once("exit", (code) => {
        live.delete(this.child);
        resolve(code);
      }),
    );
    let buffer = "";
    let onListening: () => void = () => {};
    let onServing: () => void = () => {};
    this.listening = new Promise((resolve) => (onListening = resolve));
    this.serving = new Promise((resolve) => (onServing = resolve));
    this.child.stderr?.setEncoding("utf-8");
    this.child.stderr?.on("data", (chunk: string) => {
      buffer += chunk;
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        this.lines.push(line);
        const port = /\(port (\d+)\)/.exec(line);
        if (port?.[1]) {
          this.port = Number(port[1]);
          onListening();
        }
        if (/mnemo\.app: serving\s*$/.test(line)) {
          onServing();
        }
      }
    });
  }

  private listening: Promise<void>;

  /** Starts a server and waits until it listens or serves. */
  static async start(options: ServerOptions = {}): Promise<MnemoServer> {
    const server = new MnemoServer(options);
    await server.wait(options.until === "listening" ? server.listening : server.serving);
    return server;
  }

  /** host:port of the server. */
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Waits until the server serves (after start({ until: "listening" })). */
  ready(): Promise<void> {
    return this.wait(this.serving);
  }

  private async wait(what: Promise<void>): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`mnemo-server did not start:\n${this.log()}`)), STARTUP_MS);
    });
    const died = this.exited.then((code) => {
      throw new Error(`mnemo-server exited with ${code}:\n${this.log()}`);
    });
    try {
      await Promise.race([what, timeout, died]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** What the server logged so far. */
  log(): string {
    return this.lines.join("\n");
  }

  /** Sends a signal (SIGKILL by default) and waits until the process is gone. */
  async kill(signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal);
    }
    await this.exited;
  }

  /** Kills the server and removes the data directory it made. */
  async cleanup(): Promise<void> {
    await this.kill();
    if (this.ownsDir) {
      rmSync(this.dataDir, { recursive: true, force: true });
    }
  }
}
