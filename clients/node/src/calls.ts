// The plumbing of MnemoClient: settings, the HTTP/2 transport, and how one
// call is made (deadlines, retries, cancellation, pages). Not exported from
// the package: MnemoClient holds one.

import type { Transport } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { callError, MnemoError } from "./errors.js";
import type { CallOptions } from "./options.js";
import {
  callTimeout,
  Deadline,
  requestIdOf,
  resolveSettings,
  transportOptions,
  type ClientOptions,
  type Settings,
} from "./settings.js";
import { anySignal, log, sleep } from "./streams.js";

export type Unary<Req, Res> = (request: Req, options: ConnectCall) => Promise<Res>;
export type ServerStream<Req, Res> = (request: Req, options: ConnectCall) => AsyncIterable<Res>;
export interface ConnectCall {
  signal: AbortSignal;
  timeoutMs: number | undefined;
  headers: HeadersInit | undefined;
}

export class Calls {
  readonly settings: Settings;
  readonly sessions: Http2SessionManager;
  readonly transport: Transport;
  readonly closing = new AbortController();

  constructor(address: string | null | undefined, options: ClientOptions) {
    this.settings = resolveSettings(address, options);
    const transport = transportOptions(this.settings);
    this.sessions =
      transport.sessionManager instanceof Http2SessionManager
        ? transport.sessionManager
        : new Http2SessionManager(
            this.settings.baseUrl,
            {
              pingIntervalMs: transport.pingIntervalMs,
              pingIdleConnection: transport.pingIdleConnection,
              pingTimeoutMs: transport.pingTimeoutMs,
              idleConnectionTimeoutMs: transport.idleConnectionTimeoutMs,
            },
            transport.nodeOptions,
          );
    this.transport = createGrpcTransport({ ...transport, sessionManager: this.sessions });
  }

  /** Closes the connection; calls in flight are cancelled. */
  close(): void {
    this.closing.abort(new MnemoError("the client was closed", { code: "cancelled" }));
    this.sessions.abort();
  }

  connectCall(o: CallOptions | undefined, call: AbortController, timeoutMs: number | undefined): ConnectCall {
    return {
      signal: anySignal(o?.signal, this.closing.signal, call.signal),
      timeoutMs,
      headers: o?.headers,
    };
  }

  /** Calls a unary method, retrying per the policy within one deadline. */
  async unary<Req, Res>(
    method: Unary<Req, Res>,
    request: Req,
    o: CallOptions | undefined,
    retry = true,
  ): Promise<Res> {
    const deadline = new Deadline(callTimeout(this.settings, o?.timeoutMs));
    const policy = this.settings.retry;
    for (let attempt = 1; ; attempt++) {
      const call = new AbortController();
      const c = this.connectCall(o, call, deadline.remainingMs());
      let error: MnemoError;
      try {
        return await method(request, c);
      } catch (err) {
        error = callError(err, c.signal);
      } finally {
        call.abort();
      }
      const delay = retry ? policy.delay(attempt, error) : null;
      if (delay === null || !deadline.allows(delay) || o?.signal?.aborted) {
        throw error;
      }
      log("retrying in %d ms after %s", delay, error.message);
      await sleep(delay, o?.signal, this.closing.signal);
    }
  }

  /** Yields a server stream's messages; retries only before the first one arrived. */
  async *serverStream<Req, Res>(
    method: ServerStream<Req, Res>,
    request: Req,
    o: CallOptions | undefined,
    retry = true,
  ): AsyncGenerator<Res, undefined> {
    const deadline = new Deadline(callTimeout(this.settings, o?.timeoutMs, true));
    const policy = this.settings.retry;
    let received = false;
    for (let attempt = 1; ; attempt++) {
      const call = new AbortController();
      const c = this.connectCall(o, call, deadline.remainingMs());
      let error: MnemoError;
      try {
        for await (const message of method(request, c)) {
          received = true;
          yield message;
        }
        return undefined;
      } catch (err) {
        error = callError(err, c.signal);
      } finally {
        call.abort();
      }
      const delay = retry && !received ? policy.delay(attempt, error) : null;
      if (delay === null || !deadline.allows(delay) || o?.signal?.aborted) {
        throw error;
      }
      await sleep(delay, o?.signal, this.closing.signal);
    }
  }

  async *pages<P extends { nextPageToken: string }, R>(
    fetch: (token: string) => Promise<P>,
    items: (page: P) => readonly R[],
  ): AsyncGenerator<R, undefined> {
    let token = "";
    for (;;) {
      const page = await fetch(token);
      yield* items(page);
      token = page.nextPageToken;
      if (!token) {
        return undefined;
      }
    }
  }

  requestId(given: string | null | undefined): string | null {
    return requestIdOf(this.settings, given);
  }
}
