// `MnemoClient`: one method per RPC of MemoryService and AdminService, the
// twin of the Python SDK's AsyncMnemoClient (mnemo/aio.py and client.py).

import { create, type DescMethodUnary } from "@bufbuild/protobuf";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { Calls } from "./calls.js";
import * as convert from "./convert.js";
import { callError, MnemoError } from "./errors.js";
import * as extraction from "./extraction.js";
import type { ConversationMessage, ExtractOptions, IterOperationsOptions, ListOperationsOptions } from "./extraction.js";
import { ExtractionService } from "./gen/mnemo/v1/extraction_service_pb.js";
import { AdminService, ApiKeySchema } from "./gen/mnemo/v1/admin_service_pb.js";
import { MemorySchema } from "./gen/mnemo/v1/memory_pb.js";
import { MemoryService } from "./gen/mnemo/v1/memory_service_pb.js";
import type { ExportMemoriesResponse, ImportMemoriesRequest } from "./gen/mnemo/v1/memory_service_pb.js";
import { Health, SERVING_STATUS } from "./health.js";
import * as jsonl from "./jsonl.js";
import type {
  ApiKeyRoleLike,
  BatchWriteOptions,
  CallOptions,
  CheckConsistencyOptions,
  CreateApiKeyOptions,
  CreateOptions,
  DeleteMemoriesOptions,
  DeleteOptions,
  ExportJsonlOptions,
  ExportOptions,
  GetOptions,
  GetStatsOptions,
  HistoryOptions,
  ImportJsonlOptions,
  ImportMemoriesOptions,
  IterApiKeysOptions,
  IterHistoryOptions,
  IterMemoriesOptions,
  ListApiKeysOptions,
  ListOptions,
  MemoryLike,
  ReembedOptions,
  SearchDefaults,
  SearchOptions,
  UpdateOptions,
  WatchOptions,
} from "./options.js";
import { Progress } from "./progress.js";
import * as requests from "./requests.js";
import type { WriteOp } from "./requests.js";
import { callTimeout, Deadline, type ClientOptions } from "./settings.js";
import { ExportStream, Watch } from "./streams.js";
import type * as t from "./types.js";

type Source<T> = AsyncIterable<T> | Iterable<T>;

/**
 * A client of a Mnemo server.
 *
 * Every method takes a trailing options object: the method's own options
 * (the camelCase twins of the Python SDK's keyword arguments) and the call
 * options `{ timeoutMs, signal, headers }`. Failed calls reject with a
 * `MnemoError`.
 *
 * @example
 *   const client = new MnemoClient("localhost:50051");
 *   await client.create("Alice prefers green tea", { userId: "alice" });
 *   const { hits } = await client.search("what does Alice drink?", { userId: "alice" });
 *   await client.close();
 */
export class MnemoClient {
  readonly #calls: Calls;
  readonly #memory: Client<typeof MemoryService>;
  readonly #admin: Client<typeof AdminService>;
  readonly #extraction: Client<typeof ExtractionService>;

  /**
   * @param address host:port of the server; `MNEMO_ADDRESS`, else
   *   "localhost:50051", when not given. May also be given as `options.address`.
   * @param options API key, TLS, default deadline, gzip, retries, ...
   */
  constructor(address?: string | ClientOptions | null, options: ClientOptions = {}) {
    if (typeof address === "object" && address !== null) {
      options = address;
      address = undefined;
    }
    this.#calls = new Calls(address, options);
    this.#memory = createClient(MemoryService, this.#calls.transport);
    this.#admin = createClient(AdminService, this.#calls.transport);
    this.#extraction = createClient(ExtractionService, this.#calls.transport);
  }

  // -- plumbing -----------------------------------------------------------------

  /** The server address this client talks to. */
  get address(): string {
    return this.#calls.settings.address;
  }

  /** The underlying connect-es transport (gRPC over HTTP/2). */
  get channel(): Transport {
    return this.#calls.transport;
  }

  /** The raw mnemo.v1.MemoryService client, as an escape hatch: the API key and
   * metadata are sent, but there are no retries and errors are ConnectErrors
   * (`MnemoError.from(err)` converts them). */
  get stub(): Client<typeof MemoryService> {
    return this.#memory;
  }

  /** The raw mnemo.v1.AdminService client. */
  get adminStub(): Client<typeof AdminService> {
    return this.#admin;
  }

  /** The raw mnemo.v1.ExtractionService client. */
  get extractionStub(): Client<typeof ExtractionService> {
    return this.#extraction;
  }

  /** Closes the connection; calls in flight are cancelled. */
  async close(): Promise<void> {
    this.#calls.close();
  }

  toString(): string {
    return `MnemoClient(${JSON.stringify(this.#calls.settings.address)})`;
  }

  // -- MemoryService --------------------------------------------------------------

  /**
   * Creates a memory (CreateMemory).
   *
   * @returns The memory created, or with `deduplicated` the existing one matched.
   * @example
   *   const { memory } = await client.create("Bob's birthday is May 3",
   *     { userId: "bob", kind: "semantic", tags: ["birthday"], metadata: { year: 1990 } });
   */
  async create(content: string, options: CreateOptions = {}): Promise<t.CreateResult> {
    const request = requests.createMemory(content, { ...options, requestId: this.#calls.requestId(options.requestId) });
    const response = await this.#calls.unary(
      (r, c) => this.#memory.createMemory(r, c),
      request,
      options,
      request.requestId !== "",
    );
    return convert.createResult(response);
  }

  /** Returns one memory (GetMemory). */
  async get(id: string, options: GetOptions = {}): Promise<t.Memory> {
    const response = await this.#calls.unary((r, c) => this.#memory.getMemory(r, c), requests.getMemory(id, options), options);
    return convert.memory(response.memory ?? create(MemorySchema));
  }

  /**
   * Changes the fields given, and only those (UpdateMemory). The update mask
   * is made from the options that are not undefined; null clears a field (for
   * example `expireTime: null` makes the memory never expire).
   *
   * @returns The memory after the update.
   */
  async update(id: string, options: UpdateOptions = {}): Promise<t.Memory> {
    const request = requests.updateMemory(id, { ...options, requestId: this.#calls.requestId(options.requestId) });
    const response = await this.#calls.unary(
      (r, c) => this.#memory.updateMemory(r, c),
      request,
      options,
      request.requestId !== "",
    );
    return convert.memory(response.memory ?? create(MemorySchema));
  }

  /** Deletes a memory, optionally only if its etag still matches (DeleteMemory). */
  async delete(id: string, options: DeleteOptions = {}): Promise<t.DeleteResult> {
    const request = requests.deleteMemory(id, { ...options, requestId: this.#calls.requestId(options.requestId) });
    const response = await this.#calls.unary(
      (r, c) => this.#memory.deleteMemory(r, c),
      request,
      options,
      request.requestId !== "",
    );
    return convert.deleteResult(response);
  }

  /** Returns one page of memories in a scope (ListMemories); see `iterMemories`. */
  async list(options: ListOptions = {}): Promise<t.MemoryPage> {
    const response = await this.#calls.unary(
      (r, c) => this.#memory.listMemories(r, c),
      requests.listMemories(options),
      options,
    );
    return convert.memoryPage(response);
  }

  /** Iterates over every memory of a scope, fetching pages as needed; `timeoutMs` applies to each page. */
  iterMemories(options: IterMemoriesOptions = {}): AsyncGenerator<t.Memory, undefined> {
    return this.#calls.pages(
      (token) => this.list({ ...options, pageToken: token }),
      (page) => page.memories,
    );
  }

  /**
   * Finds memories by meaning, by words or both (SearchMemories; see `options.mode`).
   * Exactly one of `query` and `options.vector` is required.
   */
  async search(query?: string | null, options?: SearchOptions): Promise<t.SearchResult>;
  async search(options: SearchOptions): Promise<t.SearchResult>;
  async search(query?: string | SearchOptions | null, options: SearchOptions = {}): Promise<t.SearchResult> {
    if (typeof query === "object" && query !== null) {
      options = query;
      query = undefined;
    }
    const response = await this.#calls.unary(
      (r, c) => this.#memory.searchMemories(r, c),
      requests.searchMemories(query, options),
      options,
    );
    return convert.searchResult(response);
  }

  /**
   * Runs many searches in one call (BatchSearchMemories); results in query
   * order. Each query is a text or a `SearchQuery`; the options are the
   * defaults of the queries that leave them unset.
   */
  async batchSearch(
    queries: readonly (string | t.SearchQuery)[],
    options: SearchDefaults = {},
  ): Promise<t.SearchResult[]> {
    const request = requests.batchSearchMemories(queries, requests.searchDefaults(options));
    const response = await this.#calls.unary((r, c) => this.#memory.batchSearchMemories(r, c), request, options);
    return response.results.map(convert.searchResult);
  }

  /**
   * Searches over one stream (StreamSearchMemories): queries go out as
   * `queries` yields them and answers come back as soon as they are ready, in
   * any order. Each answer carries the `queryId` of its query: the
   * `SearchQuery`'s own, else the query's position ("0", "1", ...). A failed
   * query yields an answer with `error` set and the stream goes on.
   */
  async *streamSearch(
    queries: Source<string | t.SearchQuery>,
    options: SearchDefaults = {},
  ): AsyncGenerator<t.StreamSearchResult, undefined> {
    const defaults = requests.searchDefaults(options);
    const input: { error?: unknown } = {};
    async function* messages() {
      let position = 0;
      try {
        for await (const query of queries) {
          yield requests.streamSearchMemories(query, defaults, position++);
        }
      } catch (err) {
        input.error = err;
        throw err;
      }
    }
    const call = new AbortController();
    const timeoutMs = new Deadline(callTimeout(this.#calls.settings, options.timeoutMs, true)).remainingMs();
    const c = this.#calls.connectCall(options, call, timeoutMs);
    try {
      for await (const response of this.#memory.streamSearchMemories(messages(), c)) {
        yield convert.streamSearchResult(response);
      }
    } catch (err) {
      throw input.error ?? callError(err, c.signal);
    } finally {
      call.abort();
    }
    return undefined;
  }

  /**
   * Applies many creates, updates and deletes in one call (BatchWriteMemories).
   *
   * @param operations `WriteOp.create(...)`, `WriteOp.update(...)`, `WriteOp.delete(...)`.
   * @returns One `WriteResult` per operation, in order; a failed operation has
   *   `error` set and does not reject.
   */
  async batchWrite(operations: readonly WriteOp[], options: BatchWriteOptions = {}): Promise<t.BatchWriteResult> {
    const request = requests.batchWriteMemories(operations, {
      ...options,
      requestId: this.#calls.requestId(options.requestId),
    });
    const response = await this.#calls.unary(
      (r, c) => this.#memory.batchWriteMemories(r, c),
      request,
      options,
      request.requestId !== "",
    );
    return convert.batchWriteResult(response);
  }

  /**
   * Loads memories in the export format over one stream (ImportMemories).
   * Per-memory failures are reported in the result, not thrown.
   *
   * @param memories `Memory` objects (as `export` yields them), mnemo.v1.Memory
   *   messages or their proto-JSON objects; an array or any (async) iterable.
   */
  async importMemories(memories: Source<MemoryLike>, options: ImportMemoriesOptions = {}): Promise<t.ImportResult> {
    return this.#import(requests.importMemoriesHead(options), memories, options, null);
  }

  async #import(
    head: ImportMemoriesRequest[],
    memories: Source<MemoryLike>,
    o: CallOptions,
    progress: Progress | null,
  ): Promise<t.ImportResult> {
    const input: { error?: unknown } = {};
    async function* messages() {
      yield* head;
      try {
        for await (const memory of memories) {
          yield requests.importMemoriesItem(memory);
          progress?.advance();
        }
      } catch (err) {
        input.error = err;
        throw err;
      }
    }
    const call = new AbortController();
    const timeoutMs = new Deadline(callTimeout(this.#calls.settings, o.timeoutMs, true)).remainingMs();
    const c = this.#calls.connectCall(o, call, timeoutMs);
    try {
      return convert.importResult(await this.#memory.importMemories(messages(), c));
    } catch (err) {
      throw input.error ?? callError(err, c.signal);
    } finally {
      call.abort();
    }
  }

  /** Imports a JSON Lines file written by `exportJsonl` (or the Python SDK's `mnemo export`). */
  async importJsonl(path: string, options: ImportJsonlOptions = {}): Promise<t.ImportResult> {
    const total = await jsonl.validate(path); // a bad line imports nothing
    const { header, memories } = await jsonl.read(path);
    const head = requests.importMemoriesHead({ ...options, header });
    const bar = new Progress("imported", total, options.progress ?? null);
    try {
      return await this.#import(head, memories, options, bar);
    } finally {
      bar.close();
      await memories.return(undefined);
    }
  }

  /**
   * Streams the memories of a scope or filter, or all of them (ExportMemories).
   *
   * @returns An async iterable of `Memory`, whose `header()` is the export's header.
   */
  export(options: ExportOptions = {}): ExportStream {
    const request = requests.exportMemories(options);
    return new ExportStream(this.#calls.serverStream((r, c) => this.#memory.exportMemories(r, c), request, options));
  }

  /**
   * Writes an export to a JSON Lines file; resolves to how many memories it holds.
   * The file is the export stream as it came: a header line, then one line per
   * memory (see `importJsonl`).
   */
  async exportJsonl(path: string, options: ExportJsonlOptions = {}): Promise<number> {
    const request = requests.exportMemories(options);
    const bar = new Progress("exported", null, options.progress ?? null);
    const messages = this.#calls.serverStream<typeof request, ExportMemoriesResponse>(
      (r, c) => this.#memory.exportMemories(r, c),
      request,
      options,
    );
    try {
      return await jsonl.write(path, messages, () => bar.advance());
    } finally {
      bar.close();
    }
  }

  /**
   * Deletes every memory of a scope or filter with its history (DeleteMemories):
   * a user's right to be forgotten. A scope or a filter is required.
   */
  async deleteMemories(options: DeleteMemoriesOptions = {}): Promise<t.DeleteMemoriesResult> {
    const request = requests.deleteMemories({ ...options, requestId: this.#calls.requestId(options.requestId) });
    const response = await this.#calls.unary(
      (r, c) => this.#memory.deleteMemories(r, c),
      request,
      options,
      request.requestId !== "",
    );
    return convert.deleteMemoriesResult(response);
  }

  /** Returns one page of a memory's versions, newest first (GetMemoryHistory). */
  async history(id: string, options: HistoryOptions = {}): Promise<t.HistoryPage> {
    const response = await this.#calls.unary(
      (r, c) => this.#memory.getMemoryHistory(r, c),
      requests.getMemoryHistory(id, options),
      options,
    );
    return convert.historyPage(response);
  }

  /** Iterates over all versions of a memory, newest first, fetching pages as needed. */
  iterHistory(id: string, options: IterHistoryOptions = {}): AsyncGenerator<t.MemoryVersion, undefined> {
    return this.#calls.pages(
      (token) => this.history(id, { ...options, pageToken: token }),
      (page) => page.versions,
    );
  }

  /**
   * Follows the change feed (WatchMemories).
   *
   * Replays every change after `startRevision` (not given: from now on; 0: the
   * whole retained log), then goes on live. After a disconnect it reconnects (backing off per the retry policy,
   * for as long as the server is unavailable) and resumes after the last
   * revision seen, so no change is lost or repeated; a watcher the server
   * dropped for being too slow resumes from the revision the server names.
   *
   * @returns An async iterable of `MemoryEvent`; `close()` it (or break out of
   *   the loop) to stop. Its `revision` is the revision to resume from later.
   */
  watch(options: WatchOptions = {}): Watch {
    requests.watchMemories(options); // Invalid options throw now, not on the first event.
    const open = (revision: number | null, signal: AbortSignal, timeoutMs: number | undefined) =>
      this.#memory.watchMemories(requests.watchMemories({ ...options, startRevision: revision }), {
        signal,
        timeoutMs,
        headers: options.headers,
      });
    return new Watch(open, {
      startRevision: options.startRevision == null ? null : Number(options.startRevision),
      reconnect: options.reconnect ?? true,
      retry: this.#calls.settings.retry,
      signals: [options.signal, this.#calls.closing.signal],
      deadline: new Deadline(callTimeout(this.#calls.settings, options.timeoutMs, true)),
    });
  }

  // -- AdminService ---------------------------------------------------------------

  /** Reports memory counts, index shards, caches, revisions and retention (GetStats). */
  async getStats(options: GetStatsOptions = {}): Promise<t.Stats> {
    const response = await this.#calls.unary((r, c) => this.#admin.getStats(r, c), requests.getStats(options), options);
    return convert.stats(response);
  }

  /** Compares the store, the index and the cache, and optionally repairs (CheckConsistency). */
  async checkConsistency(options: CheckConsistencyOptions = {}): Promise<t.ConsistencyReport> {
    const response = await this.#calls.unary(
      (r, c) => this.#admin.checkConsistency(r, c),
      requests.checkConsistency(options),
      options,
    );
    return convert.consistencyReport(response);
  }

  /** Writes a snapshot of every index shard now (CreateSnapshot). */
  async createSnapshot(options: CallOptions = {}): Promise<t.Snapshot> {
    const response = await this.#calls.unary(
      (r, c) => this.#admin.createSnapshot(r, c),
      requests.createSnapshot(),
      options,
    );
    return convert.snapshot(response);
  }

  /** Re-embeds memories with the server's current model, yielding progress
   * until one with `done` (ReembedMemories). */
  async *reembed(options: ReembedOptions = {}): AsyncGenerator<t.ReembedProgress, undefined> {
    const request = requests.reembedMemories(options);
    for await (const message of this.#calls.serverStream((r, c) => this.#admin.reembedMemories(r, c), request, options, false)) {
      yield convert.reembedProgress(message);
    }
    return undefined;
  }

  /**
   * Creates an API key and returns its secret, shown only this once (CreateApiKey).
   *
   * @param role "reader", "writer" or "admin".
   */
  async createApiKey(role: ApiKeyRoleLike, options: CreateApiKeyOptions = {}): Promise<t.CreatedApiKey> {
    const response = await this.#calls.unary(
      (r, c) => this.#admin.createApiKey(r, c),
      requests.createApiKey(role, options),
      options,
      false,
    );
    return convert.createdApiKey(response);
  }

  /** Returns one page of the tenant's API keys, without secrets (ListApiKeys). */
  async listApiKeys(options: ListApiKeysOptions = {}): Promise<t.ApiKeyPage> {
    const response = await this.#calls.unary(
      (r, c) => this.#admin.listApiKeys(r, c),
      requests.listApiKeys(options),
      options,
    );
    return convert.apiKeyPage(response);
  }

  /** Iterates over all the tenant's API keys, fetching pages as needed. */
  iterApiKeys(options: IterApiKeysOptions = {}): AsyncGenerator<t.ApiKey, undefined> {
    return this.#calls.pages(
      (token) => this.listApiKeys({ ...options, pageToken: token }),
      (page) => page.apiKeys,
    );
  }

  /** Revokes an API key; it stops working at once (RevokeApiKey). */
  async revokeApiKey(id: string, options: CallOptions = {}): Promise<t.ApiKey> {
    const response = await this.#calls.unary(
      (r, c) => this.#admin.revokeApiKey(r, c),
      requests.revokeApiKey(id),
      options,
      false,
    );
    return convert.apiKey(response.apiKey ?? create(ApiKeySchema));
  }

  // -- ExtractionService ----------------------------------------------------------

  /**
   * Hands the server a conversation to turn into memories with its LLM
   * (ExtractMemories); returns the job's Operation at once, or with `wait`
   * once it has finished (or the deadline is near).
   *
   * @example
   *   const op = await client.extract([{ role: "user", content: "I moved to Lyon" }],
   *     { userId: "alice", mode: "reconcile", wait: true });
   */
  async extract(messages: readonly ConversationMessage[], options: ExtractOptions = {}): Promise<extraction.Operation> {
    const request = extraction.extractMemories(messages, { ...options, requestId: this.#calls.requestId(options.requestId) });
    const response = await this.#calls.unary(
      (r, c) => this.#extraction.extractMemories(r, c),
      request,
      options,
      request.requestId !== "",
    );
    return extraction.operation(response.operation ?? create(extraction.OperationSchema));
  }

  /** Returns one extraction Operation (GetOperation). */
  async getOperation(id: string, options: CallOptions = {}): Promise<extraction.Operation> {
    const response = await this.#calls.unary(
      (r, c) => this.#extraction.getOperation(r, c),
      extraction.getOperation(id),
      options,
    );
    return extraction.operation(response.operation ?? create(extraction.OperationSchema));
  }

  /** Returns one page of the caller's extraction Operations, newest first (ListOperations). */
  async listOperations(options: ListOperationsOptions = {}): Promise<extraction.OperationPage> {
    const response = await this.#calls.unary(
      (r, c) => this.#extraction.listOperations(r, c),
      extraction.listOperations(options),
      options,
    );
    return extraction.operationPage(response);
  }

  /** Iterates over all the caller's extraction Operations, fetching pages as needed. */
  iterOperations(options: IterOperationsOptions = {}): AsyncGenerator<extraction.Operation, undefined> {
    return this.#calls.pages(
      (token) => this.listOperations({ ...options, pageToken: token }),
      (page) => page.operations,
    );
  }

  // -- grpc.health.v1 -----------------------------------------------------------

  /**
   * The server's health (grpc.health.v1 Check): "SERVING", "NOT_SERVING", ...
   *
   * @param service A service name such as "mnemo.v1.MemoryService"; "" for the server.
   */
  async health(service = "", options: CallOptions = {}): Promise<string> {
    const method = Health.methods[0] as DescMethodUnary;
    const response = await this.#calls.unary(
      async (input: { service: string }, c) =>
        (await this.#calls.transport.unary(method, c.signal, c.timeoutMs, c.headers, input)).message,
      { service },
      options,
    );
    const status = (response as unknown as { status?: number }).status ?? 0;
    return SERVING_STATUS[status] ?? String(status);
  }
}
