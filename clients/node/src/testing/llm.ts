// A fake OpenAI-compatible chat-completions endpoint (POST /v1/chat/completions)
// for a real mnemo-server started with `--extraction-provider openai`: the
// server's mem0ai client talks HTTP to it, and `reply` scripts its answers.
// The twin of server/tests/extraction/fake_llm.py. Not part of the package.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export const KEY_ENV = "MNEMO_NODE_TEST_LLM_KEY";
export const KEY = "sk-node-test-" + "k".repeat(32);

export interface LlmReply {
  status?: number;
  content?: string;
}

/** An additive (mem0 2.x) answer adding `texts`. */
export function memories(...texts: string[]): string {
  return JSON.stringify({ memory: texts.map((text, i) => ({ id: String(i), text })) });
}

export class FakeLlm {
  /** The prompts received (the last message's content). */
  prompts: string[] = [];
  reply: (prompt: string) => LlmReply = () => ({ content: '{"memory": []}' });
  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(): Promise<FakeLlm> {
    let self: FakeLlm | undefined;
    const server = createServer((req, res) => {
      let body = "";
      req.setEncoding("utf-8");
      req.on("data", (chunk: string) => (body += chunk));
      req.on("end", () => {
        const fake = self!;
        const request = JSON.parse(body) as { model: string; messages: { content: string }[] };
        const prompt = request.messages[request.messages.length - 1]!.content;
        fake.prompts.push(prompt);
        const reply = fake.reply(prompt);
        const status = reply.status ?? 200;
        const answer =
          status === 200
            ? {
                id: "chatcmpl-node",
                object: "chat.completion",
                created: 1_700_000_000,
                model: request.model,
                choices: [{ index: 0, message: { role: "assistant", content: reply.content ?? "" }, finish_reason: "stop" }],
                usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
              }
            : { error: { message: "scripted failure", type: "server_error" } };
        res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(answer));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    self = new FakeLlm(server, (server.address() as AddressInfo).port);
    return self;
  }

  /** The mnemo-server flags that use this endpoint (the key comes from $KEY_ENV). */
  serverArgs(): string[] {
    process.env[KEY_ENV] = KEY;
    return [
      "--extraction-provider", "openai",
      "--extraction-base-url", `http://127.0.0.1:${this.port}/v1`,
      "--extraction-api-key-env", KEY_ENV,
      "--extraction-retries", "0",
    ];
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
