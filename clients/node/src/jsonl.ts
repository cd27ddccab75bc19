// The JSON Lines export format of `exportJsonl`, `importJsonl` and the Python
// SDK's command line (the twin of the Python SDK's mnemo._jsonl).
//
// Each line is the canonical proto-JSON of one ExportMemoriesResponse message:
// first `{"header": {...}}`, then one `{"memory": {...}}` per memory. It is the
// export stream written down as it came, so an import can send it back
// unchanged.

import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { createInterface } from "node:readline";
import { clone, fromJsonString, toJsonString } from "@bufbuild/protobuf";
import { clampTimestamp } from "./convert.js";
import { MemorySchema, type Memory as MemoryMessage } from "./gen/mnemo/v1/memory_pb.js";
import {
  ExportHeaderSchema,
  ExportMemoriesResponseSchema,
  type ExportHeader,
  type ExportMemoriesResponse,
} from "./gen/mnemo/v1/memory_service_pb.js";

const MEMORY_TIMES = ["createTime", "updateTime", "expireTime", "lastRetrieveTime"] as const;

/** One line (without its newline) for an export stream message, its times
 * clamped to what proto-JSON can write (as the Python SDK does): a line per
 * memory, whatever times the server holds. */
export function line(message: ExportMemoriesResponse): string {
  const item = message.item;
  if (item.case === "memory") {
    const memory = clone(MemorySchema, item.value);
    for (const name of MEMORY_TIMES) {
      const ts = memory[name];
      if (ts !== undefined) {
        memory[name] = clampTimestamp(ts);
      }
    }
    message = { ...message, item: { case: "memory", value: memory } };
  } else if (item.case === "header" && item.value.exportTime !== undefined) {
    const header = clone(ExportHeaderSchema, item.value);
    header.exportTime = clampTimestamp(item.value.exportTime);
    message = { ...message, item: { case: "header", value: header } };
  }
  return toJsonString(ExportMemoriesResponseSchema, message);
}

async function* numberedLines(path: string): AsyncGenerator<[number, string]> {
  const rl = createInterface({ input: createReadStream(path, { encoding: "utf-8" }), crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const text of rl) {
      n += 1;
      if (text.trim()) {
        yield [n, text];
      }
    }
  } finally {
    rl.close();
  }
}

/**
 * Checks every line of a file before anything is sent, so a bad file imports
 * nothing; resolves to how many memories it holds. Rejects with a SyntaxError
 * "line N: why" for the first line that is not an export line.
 */
export async function validate(path: string): Promise<number> {
  const { memories } = await read(path);
  let count = 0;
  for await (const _ of memories) {
    count += 1;
  }
  return count;
}

function parse(n: number, text: string): ExportMemoriesResponse {
  try {
    const message = fromJsonString(ExportMemoriesResponseSchema, text);
    if (message.item.case === undefined) {
      throw new Error('neither {"header": ...} nor {"memory": ...}');
    }
    return message;
  } catch (err) {
    throw new SyntaxError(`line ${n}: not an export line: ${(err as Error).message}`);
  }
}

/** The header message of a file (or null) and an iterator of its memory messages. */
export async function read(
  path: string,
): Promise<{ header: ExportHeader | null; memories: AsyncGenerator<MemoryMessage> }> {
  const lines = numberedLines(path);
  const first = await lines.next();
  if (first.done) {
    return { header: null, memories: (async function* () {})() };
  }
  const head = parse(...first.value);
  async function* memories(): AsyncGenerator<MemoryMessage> {
    try {
      if (head.item.case === "memory") {
        yield head.item.value;
      }
      for await (const [n, text] of lines) {
        const message = parse(n, text);
        if (message.item.case !== "memory") {
          throw new SyntaxError(`line ${n}: expected a memory line, found a header (only line 1 may be one)`);
        }
        yield message.item.value;
      }
    } finally {
      await lines.return(undefined);
    }
  }
  return { header: head.item.case === "header" ? head.item.value : null, memories: memories() };
}

/** Writes an export stream to `path` as it comes; resolves to how many memories it held. */
export async function write(
  path: string,
  messages: AsyncIterable<ExportMemoriesResponse>,
  advance: () => void,
): Promise<number> {
  const out = createWriteStream(path, { encoding: "utf-8" });
  let count = 0;
  try {
    for await (const message of messages) {
      if (!out.write(line(message) + "\n")) {
        await once(out, "drain");
      }
      if (message.item.case === "memory") {
        count += 1;
        advance();
      }
    }
  } finally {
    out.end();
    await once(out, "close");
  }
  return count;
}
