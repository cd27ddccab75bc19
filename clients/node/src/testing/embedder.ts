// A fake OpenAI-compatible embedding endpoint (POST /v1/embeddings) for a real
// mnemo-server started with `--embedder-provider http`: deterministic small
// vectors, and failures on demand. The server starts in a second instead of
// loading a model. Not part of the package.

import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export const DIMENSION = 8;

/** A deterministic unit-free vector of a text (never all zeros). */
export function vectorOf(text: string): number[] {
  const digest = createHash("sha256").update(text).digest();
  return Array.from({ length: DIMENSION }, (_, i) => (digest[i]! - 127.5) / 128);
}

export class FakeEmbedder {
  /** Requests answered so far (failures included). */
  requests = 0;
  /** Answer this many of the next requests with HTTP 400, which the server does not retry. */
  failNext = 0;
  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(): Promise<FakeEmbedder> {
    let self: FakeEmbedder | undefined;
    const server = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf-8");
      req.on("data", (chunk: string) => (body += chunk));
      req.on("end", () => {
        const fake = self!;
        fake.requests += 1;
        if (fake.failNext > 0) {
          fake.failNext -= 1;
          res.writeHead(400, { "content-type": "application/json" }).end('{"error":"refused on purpose"}');
          return;
        }
        const input = (JSON.parse(body) as { input: string[] }).input;
        const data = input.map((text, index) => ({ index, embedding: vectorOf(text) }));
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ data }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    self = new FakeEmbedder(server, (server.address() as AddressInfo).port);
    return self;
  }

  /** The mnemo-server flags that use this endpoint. */
  serverArgs(): string[] {
    return [
      "--embedder-provider", "http",
      "--embedder-url", `http://127.0.0.1:${this.port}/v1`,
      "--embedder-model", "fake-embedder",
      "--embedder-dimension", String(DIMENSION),
      "--embedder-timeout-s", "5",
      "--embedder-cache-bytes", "0",
    ];
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
