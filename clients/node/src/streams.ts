// The objects of the long-lived streams: an export with its header, and the
// change feed that reconnects by itself (the twins of the Python SDK's
// AsyncExportStream and AsyncWatch).

import { setTimeout as sleepTimer } from "node:timers/promises";
import { debuglog } from "node:util";
import * as convert from "./convert.js";
import { callError, MnemoError } from "./errors.js";
import type { ExportMemoriesResponse, WatchMemoriesResponse } from "./gen/mnemo/v1/memory_service_pb.js";
import type { RetryPolicy } from "./retry.js";
import type { Deadline } from "./settings.js";
import type { ExportHeader, Memory, MemoryEvent } from "./types.js";

export const log = debuglog("mnemo");

/** The controllers following one signal, behind a single "abort" listener on it. */
interface Followers {
  readonly controllers: Set<AbortController>;
  readonly relay: () => void;
}
const followersOf = new WeakMap<AbortSignal, Followers>();

/**
 * Makes `controller` abort when `source` does. However many calls are in
 * flight, `source` carries one listener of ours (so 11 concurrent calls on a
 * client, or sharing a caller's signal, do not trip MaxListenersExceededWarning);
 * it is removed when the last follower is done.
 */
function follow(source: AbortSignal, controller: AbortController): void {
  let followers = followersOf.get(source);
  if (followers === undefined) {
    const controllers = new Set<AbortController>();
    const relay = () => {
      followersOf.delete(source);
      for (const c of controllers) c.abort(source.reason);
    };
    followers = { controllers, relay };
    followersOf.set(source, followers);
    source.addEventListener("abort", relay, { once: true });
  }
  const { controllers, relay } = followers;
  controllers.add(controller);
  controller.signal.addEventListener(
    "abort",
    () => {
      controllers.delete(controller);
      if (controllers.size === 0 && followersOf.get(source) === followers) {
        followersOf.delete(source);
        source.removeEventListener("abort", relay);
      }
    },
    { once: true },
  );
}

/** A signal that aborts when any of the given ones does. */
export function anySignal(...signals: (AbortSignal | undefined)[]): AbortSignal {
  const given = signals.filter((s): s is AbortSignal => s !== undefined);
  if (given.length === 1 && given[0]) {
    return given[0];
  }
  const controller = new AbortController();
  for (const signal of given) {
    if (signal.aborted) {
      controller.abort(signal.reason);
      break;
    }
    follow(signal, controller);
  }
  return controller.signal;
}

/** Waits `ms` milliseconds; rejects with a "cancelled" MnemoError if any signal aborts. */
export async function sleep(ms: number, ...signals: (AbortSignal | undefined)[]): Promise<void> {
  const done = new AbortController(); // aborted at the end: drops the listeners on the given signals
  const signal = anySignal(...signals, done.signal);
  try {
    await sleepTimer(ms, undefined, { signal });
  } catch (err) {
    throw new MnemoError("the call was cancelled", { code: "cancelled", cause: err });
  } finally {
    done.abort();
  }
}

/**
 * The memories of an export, in order, as an async iterable;
 * `await stream.header()` is the export's header. Breaking out of a
 * `for await` loop (or `close()`) cancels the call.
 */
export class ExportStream implements AsyncIterableIterator<Memory> {
  readonly #messages: AsyncGenerator<ExportMemoriesResponse>;
  #header: ExportHeader | null = null;
  #pending: ExportMemoriesResponse | null = null;
  #started: Promise<void> | null = null;

  /** @internal */
  constructor(messages: AsyncGenerator<ExportMemoriesResponse>) {
    this.#messages = messages;
  }

  /** The export's header (reads it from the stream if needed). */
  async header(): Promise<ExportHeader> {
    await this.#start();
    if (this.#header === null) {
      throw new MnemoError("the export stream ended without a header", { code: "data_loss" });
    }
    return this.#header;
  }

  #start(): Promise<void> {
    this.#started ??= (async () => {
      const first = await this.#messages.next();
      if (first.done) {
        return;
      }
      if (first.value.item.case === "header") {
        this.#header = convert.exportHeader(first.value.item.value);
      } else {
        this.#pending = first.value;
      }
    })();
    return this.#started;
  }

  async next(): Promise<IteratorResult<Memory, undefined>> {
    await this.#start();
    let message = this.#pending;
    this.#pending = null;
    if (message === null) {
      const result = await this.#messages.next();
      if (result.done) {
        return { done: true, value: undefined };
      }
      message = result.value;
    }
    if (message.item.case !== "memory") {
      throw new MnemoError("the export stream sent a second header", { code: "data_loss" });
    }
    return { done: false, value: convert.memory(message.item.value) };
  }

  async return(): Promise<IteratorResult<Memory, undefined>> {
    await this.close();
    return { done: true, value: undefined };
  }

  /** Stops the export; the call is cancelled. */
  async close(): Promise<void> {
    await this.#messages.return(undefined);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** What `Watch` needs from the client: a way to open one WatchMemories call. */
export type OpenWatch = (
  startRevision: number | null,
  signal: AbortSignal,
  timeoutMs: number | undefined,
) => AsyncIterable<WatchMemoriesResponse>;

/** The revision an error of a watch says to resume from (ErrorInfo metadata
 * "resume_revision", as WATCH_TOO_SLOW and SERVER_DRAINING carry), if any. */
export function resumeRevision(error: MnemoError): number | null {
  const value = error.metadata["resume_revision"] ?? "";
  return /^\d+$/.test(value) ? Number(value) : null;
}

/**
 * The change feed, as an async iterable of `MemoryEvent`s that reconnects by
 * itself: after a disconnect it backs off per the retry policy (for as long as
 * the server is unavailable) and resumes after the last revision seen, so no
 * change is lost or repeated.
 *
 * `revision` is the revision to resume from: the watcher has seen every change
 * up to it (null while nothing came from a watch started live). Save it to
 * resume later with `watch({ startRevision })`.
 * `close()` (or breaking out of a `for await` loop) stops watching quietly; the
 * call's `signal` stops it with a "cancelled" MnemoError.
 */
export class Watch implements AsyncIterableIterator<MemoryEvent> {
  /** The revision to resume from; null until the server sent one, when the
   * watch started live. */
  revision: number | null;
  #closed = false;
  readonly #stop = new AbortController();
  readonly #events: AsyncGenerator<MemoryEvent, undefined>;
  readonly #open: OpenWatch;

  /** @internal */
  constructor(
    open: OpenWatch,
    options: {
      startRevision: number | null;
      reconnect: boolean;
      retry: RetryPolicy;
      /** The caller's signal and the client's: either stops the watch with "cancelled". */
      signals: (AbortSignal | undefined)[];
      deadline: Deadline;
    },
  ) {
    this.#open = open;
    this.revision = options.startRevision;
    this.#events = this.#run(options.reconnect, options.retry, options.signals, options.deadline);
  }

  next(): Promise<IteratorResult<MemoryEvent, undefined>> {
    return this.#events.next();
  }

  async return(): Promise<IteratorResult<MemoryEvent, undefined>> {
    await this.close();
    return { done: true, value: undefined };
  }

  /** Stops watching; the call is cancelled. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#stop.abort();
    await this.#events.return(undefined);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async *#run(
    reconnect: boolean,
    retry: RetryPolicy,
    signals: (AbortSignal | undefined)[],
    deadline: Deadline,
  ): AsyncGenerator<MemoryEvent, undefined> {
    let failures = 0;
    while (!this.#closed) {
      const call = new AbortController();
      const signal = anySignal(this.#stop.signal, ...signals, call.signal);
      let error: MnemoError | null = null;
      try {
        for await (const response of this.#open(this.revision, signal, deadline.remainingMs())) {
          failures = 0;
          for (const event of response.events) {
            this.revision = Math.max(this.revision ?? 0, Number(event.revision));
            yield convert.memoryEvent(event);
          }
          this.revision = Math.max(this.revision ?? 0, Number(response.revision));
        }
      } catch (err) {
        if (this.#closed) {
          return undefined;
        }
        error = callError(err, signal);
        if (signals.some((s) => s?.aborted)) {
          throw error;
        }
      } finally {
        call.abort();
      }
      if (this.#closed) {
        return undefined;
      }
      if (error !== null) {
        const resume = resumeRevision(error);
        if (resume !== null) {
          this.revision = resume;
        }
        if (!reconnect || (resume === null && !retry.retryable(error))) {
          throw error;
        }
      } else if (!reconnect) {
        return undefined;
      }
      failures += 1;
      const delay = retry.backoff(failures, error);
      log("watch disconnected (%s); resuming after revision %s in %d ms", error?.message, this.revision, delay);
      if (!deadline.allows(delay)) {
        throw new MnemoError("the watch's deadline passed while reconnecting", {
          code: "deadline_exceeded",
          cause: error,
        });
      }
      try {
        await sleep(delay, this.#stop.signal, ...signals);
      } catch (err) {
        if (this.#closed) {
          return undefined;
        }
        throw err;
      }
    }
    return undefined;
  }
}
