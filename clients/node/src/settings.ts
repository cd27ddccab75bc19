// Connection settings, credentials, call headers, deadlines and request ids
// (the twin of the Python SDK's mnemo._base).

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";
import type { Interceptor } from "@connectrpc/connect";
import { compressionGzip, type GrpcTransportOptions } from "@connectrpc/connect-node";
import { DEFAULT_RETRY, RetryPolicy, type RetryPolicyOptions } from "./retry.js";
import { VERSION } from "./version.js";

export const DEFAULT_ADDRESS = "localhost:50051";
export const DEFAULT_TIMEOUT_MS = 30_000;
export const ADDRESS_ENV = "MNEMO_ADDRESS";
export const API_KEY_ENV = "MNEMO_API_KEY";

/** A PEM file: its path, or its contents as bytes. */
export type PemSource = string | URL | Uint8Array;

/** The options of `new MnemoClient(address, options)`. */
export interface ClientOptions {
  /** host:port of the server (`MNEMO_ADDRESS`, else "localhost:50051", when not
   * given); an http:// or https:// URL is taken as it is. */
  address?: string | null;
  /** Sent as "authorization: Bearer KEY"; `MNEMO_API_KEY` when not given. */
  apiKey?: string | null;
  /** Use TLS; implied by any of the three PEM files. */
  tls?: boolean | null;
  /** PEM root certificates to trust instead of the system's. */
  caFile?: PemSource | null;
  /** PEM client certificate chain, for mutual TLS (with keyFile). */
  certFile?: PemSource | null;
  /** PEM client private key, for mutual TLS. */
  keyFile?: PemSource | null;
  /** The name to check the server's certificate against, when it differs from
   * the address's host. */
  tlsServerName?: string | null;
  /** Default deadline of each unary call in milliseconds, retries included;
   * null (or Infinity) for none. Streaming calls have no default deadline.
   * Default 30000. */
  timeoutMs?: number | null;
  /** Compress requests with gzip. */
  gzip?: boolean;
  /** Milliseconds between keepalive pings on an idle connection (the server
   * accepts one every 10 s at most); null to not ping. */
  keepaliveTimeMs?: number | null;
  /** Milliseconds to wait for a ping's answer before dropping the connection. */
  keepaliveTimeoutMs?: number | null;
  /** When to retry; `new RetryPolicy({ maxAttempts: 1 })` (or `{ maxAttempts: 1 }`) turns retries off. */
  retry?: RetryPolicy | RetryPolicyOptions | null;
  /** Give each write a fresh request id (idempotency key) when the caller
   * gives none, so that it can be retried safely. Default true. */
  autoRequestId?: boolean;
  /** Extra gRPC metadata (request headers) sent with every call. */
  metadata?: Readonly<Record<string, string>> | readonly (readonly [string, string])[] | null;
  /** Extra options of `createGrpcTransport` (@connectrpc/connect-node), such as
   * `interceptors` or `nodeOptions`, merged over the ones made from the above. */
  channelOptions?: Partial<GrpcTransportOptions> | null;
}

/** The resolved connection settings of a client. */
export interface Settings {
  readonly address: string;
  readonly baseUrl: string;
  readonly apiKey: string;
  readonly tls: boolean;
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
  readonly tlsServerName: string | null;
  readonly timeoutMs: number | null;
  readonly gzip: boolean;
  readonly keepaliveTimeMs: number | null;
  readonly keepaliveTimeoutMs: number | null;
  readonly retry: RetryPolicy;
  readonly autoRequestId: boolean;
  readonly metadata: readonly (readonly [string, string])[];
  readonly channelOptions: Partial<GrpcTransportOptions>;
}

function readPem(source: PemSource | null | undefined): Buffer | undefined {
  if (source == null) {
    return undefined;
  }
  return source instanceof Uint8Array ? Buffer.from(source) : readFileSync(source);
}

function baseUrlOf(address: string, tls: boolean): string {
  if (/^https?:\/\//i.test(address)) {
    const secure = /^https:/i.test(address);
    if (secure !== tls) {
      throw new RangeError(`address ${address} and tls=${tls} disagree`);
    }
    return address.replace(/\/+$/, "");
  }
  return `${tls ? "https" : "http"}://${address}`;
}

export function resolveSettings(address: string | null | undefined, o: ClientOptions): Settings {
  if ((o.certFile == null) !== (o.keyFile == null)) {
    throw new TypeError("certFile and keyFile go together (mutual TLS)");
  }
  const timeout = o.timeoutMs === undefined ? DEFAULT_TIMEOUT_MS : o.timeoutMs;
  if (timeout !== null && !(timeout > 0)) {
    throw new RangeError("timeoutMs must be positive, or null for no deadline");
  }
  const resolved = address || o.address || process.env[ADDRESS_ENV] || DEFAULT_ADDRESS;
  const explicitScheme = /^https:\/\//i.test(resolved);
  const tls =
    o.tls != null ? Boolean(o.tls) : explicitScheme || [o.caFile, o.certFile, o.keyFile].some((f) => f != null);
  const metadata = o.metadata ?? [];
  const pairs: (readonly [string, string])[] = Array.isArray(metadata)
    ? [...(metadata as readonly (readonly [string, string])[])]
    : Object.entries(metadata as Record<string, string>);
  const retry = o.retry instanceof RetryPolicy ? o.retry : o.retry ? new RetryPolicy(o.retry) : DEFAULT_RETRY;
  return {
    address: resolved,
    baseUrl: baseUrlOf(resolved, tls),
    apiKey: o.apiKey == null ? (process.env[API_KEY_ENV] ?? "") : o.apiKey,
    tls,
    ca: readPem(o.caFile),
    cert: readPem(o.certFile),
    key: readPem(o.keyFile),
    tlsServerName: o.tlsServerName || null,
    timeoutMs: timeout === null || timeout === Infinity ? null : timeout,
    gzip: Boolean(o.gzip),
    keepaliveTimeMs: o.keepaliveTimeMs ?? null,
    keepaliveTimeoutMs: o.keepaliveTimeoutMs ?? null,
    retry,
    autoRequestId: o.autoRequestId ?? true,
    metadata: pairs.map(([k, v]) => [k.toLowerCase(), v] as const),
    channelOptions: o.channelOptions ?? {},
  };
}

/** The user agent, in front of connect-es's own. */
export const USER_AGENT = `mnemo-node/${VERSION}`;

/** Adds the API key, the client's metadata and the user agent to every request. */
function headersInterceptor(s: Settings): Interceptor {
  return (next) => async (req) => {
    if (s.apiKey && !req.header.has("authorization")) {
      req.header.set("authorization", `Bearer ${s.apiKey}`);
    }
    for (const [key, value] of s.metadata) {
      req.header.append(key, value);
    }
    const agent = req.header.get("user-agent");
    req.header.set("user-agent", agent ? `${USER_AGENT} ${agent}` : USER_AGENT);
    return next(req);
  };
}

/** The createGrpcTransport options of the settings (without a session manager). */
export function transportOptions(s: Settings): GrpcTransportOptions {
  const nodeOptions: SecureClientSessionOptions = {};
  if (s.tls) {
    if (s.ca) nodeOptions.ca = s.ca;
    if (s.cert) nodeOptions.cert = s.cert;
    if (s.key) nodeOptions.key = s.key;
    if (s.tlsServerName) nodeOptions.servername = s.tlsServerName;
  }
  const options: GrpcTransportOptions = {
    baseUrl: s.baseUrl,
    nodeOptions,
    interceptors: [headersInterceptor(s)],
  };
  if (s.gzip) {
    options.sendCompression = compressionGzip;
    // As gRPC does with channel compression: every message, however small.
    options.compressMinBytes = 0;
  }
  if (s.keepaliveTimeMs !== null) {
    options.pingIntervalMs = s.keepaliveTimeMs;
    options.pingIdleConnection = true;
  }
  if (s.keepaliveTimeoutMs !== null) {
    options.pingTimeoutMs = s.keepaliveTimeoutMs;
  }
  const extra = s.channelOptions;
  return {
    ...options,
    ...extra,
    nodeOptions: { ...nodeOptions, ...(extra.nodeOptions ?? {}) },
    interceptors: [...(options.interceptors ?? []), ...(extra.interceptors ?? [])],
  };
}

/** The time left of one call across its retries; a null end means no deadline. */
export class Deadline {
  private readonly end: number | null;

  constructor(timeoutMs: number | null) {
    this.end = timeoutMs === null ? null : performance.now() + timeoutMs;
  }

  /** The milliseconds left (at least 1: connect-es takes 0 as "no deadline"), or undefined. */
  remainingMs(): number | undefined {
    return this.end === null ? undefined : Math.max(1, Math.ceil(this.end - performance.now()));
  }

  allows(delayMs: number): boolean {
    return this.end === null || performance.now() + delayMs < this.end;
  }
}

/** A call's timeout: its own, else the client's default (unary calls only). */
export function callTimeout(s: Settings, timeoutMs: number | null | undefined, stream = false): number | null {
  if (timeoutMs == null) {
    return stream ? null : s.timeoutMs;
  }
  if (!(timeoutMs > 0)) {
    throw new RangeError("timeoutMs must be positive");
  }
  return timeoutMs === Infinity ? null : timeoutMs;
}

/** The idempotency key of a write: the caller's, else a fresh one when enabled
 * (32 lowercase hex digits, like Python's uuid4().hex). */
export function requestIdOf(s: Settings, given: string | null | undefined): string | null {
  if (given != null) {
    return given;
  }
  return s.autoRequestId ? randomUUID().replaceAll("-", "") : null;
}
