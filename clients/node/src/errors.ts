// Every failed call rejects with a `MnemoError` (the twin of the Python SDK's
// mnemo.errors, which has one subclass per code; here one class carries the
// code, as connect-es's ConnectError does).
//
// Branch on `code` and `reason`, never on the message text. The reasons are
// listed in the server's docs/errors.md. An error that did not come from a
// Mnemo server (a refused connection, a deadline, a proxy) has an empty
// `reason`.

import { create, fromBinary, type Message } from "@bufbuild/protobuf";
import { AnySchema, anyPack, type Any, type Duration } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "./gen/google/rpc/error_details_pb.js";
import type { Status } from "./gen/google/rpc/status_pb.js";

/** The ErrorInfo domain of errors a Mnemo server reports. */
export const DOMAIN = "mnemo.dev";

/** The gRPC status codes, by name in lower case, as `MnemoError.code` holds them. */
export type MnemoErrorCode =
  | "cancelled"
  | "unknown"
  | "invalid_argument"
  | "deadline_exceeded"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "aborted"
  | "out_of_range"
  | "unimplemented"
  | "internal"
  | "unavailable"
  | "data_loss"
  | "unauthenticated";

// Indexed by the gRPC status code number (0 is OK and never an error).
const CODES: readonly (MnemoErrorCode | "ok")[] = [
  "ok",
  "cancelled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

function codeName(code: number): MnemoErrorCode {
  const name = CODES[code];
  return name === undefined || name === "ok" ? "unknown" : name;
}

/** One invalid request field, from google.rpc.BadRequest. */
export interface FieldViolation {
  /** The path of the field, such as "memory.content" or "requests[2].vector". */
  readonly field: string;
  /** What is wrong with it, for people. */
  readonly description: string;
  /** The reason of the violation, when the server gave one. */
  readonly reason: string;
}

/** What a `MnemoError` is made of; every field is optional. */
export interface MnemoErrorInit {
  code?: MnemoErrorCode;
  reason?: string;
  details?: readonly Message[];
  fieldViolations?: readonly FieldViolation[];
  metadata?: Readonly<Record<string, string>>;
  retryAfterMs?: number | null;
  requestId?: string;
  cause?: unknown;
}

/**
 * A call failed: the one error class of the client.
 *
 * @example
 *   try {
 *     await client.get("no-such-memory");
 *   } catch (err) {
 *     if (err instanceof MnemoError && err.reason === "MEMORY_NOT_FOUND") ...
 *   }
 */
export class MnemoError extends Error {
  override name = "MnemoError";
  /** The gRPC status code, in lower case: "not_found", "unavailable", ... */
  readonly code: MnemoErrorCode;
  /** The stable reason from google.rpc.ErrorInfo, such as "MEMORY_NOT_FOUND";
   * empty when the failure did not come from a Mnemo server. */
  readonly reason: string;
  /** The status message, for people (`message` adds the code and reason). */
  readonly rawMessage: string;
  /** The decoded google.rpc detail messages of the status (ErrorInfo,
   * BadRequest, RetryInfo; others as google.protobuf.Any). */
  readonly details: readonly Message[];
  /** The invalid fields, from google.rpc.BadRequest. */
  readonly fieldViolations: readonly FieldViolation[];
  /** The ErrorInfo metadata, such as { current_etag: ... }. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Milliseconds to wait before retrying, from google.rpc.RetryInfo; null if none. */
  readonly retryAfterMs: number | null;
  /** The request id the server logged the call under, if it sent one. */
  readonly requestId: string;

  constructor(message: string, init: MnemoErrorInit = {}) {
    const code = init.code ?? "unknown";
    const reason = init.reason ?? "";
    const head = `${code} ${reason}`.trim();
    super(message ? `${head}: ${message}` : head, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = code;
    this.reason = reason;
    this.rawMessage = message;
    this.details = Object.freeze([...(init.details ?? [])]);
    this.fieldViolations = Object.freeze([...(init.fieldViolations ?? [])]);
    this.metadata = Object.freeze({ ...(init.metadata ?? {}) });
    this.retryAfterMs = init.retryAfterMs ?? null;
    this.requestId = init.requestId ?? this.metadata["request_id"] ?? "";
  }

  /** The code as a gRPC status code number (NOT_FOUND is 5). */
  get grpcCode(): number {
    return CODES.indexOf(this.code);
  }

  /** The error a google.rpc.Status stands for, as found in batch results and streams. */
  static fromStatus(status: Status, cause?: unknown): MnemoError {
    return fromParts(status.code, status.message, status.details, cause);
  }

  /**
   * The error any failure of a call stands for: a MnemoError as it is, a
   * ConnectError with its status details decoded, anything else as UNKNOWN
   * (or CANCELLED for an abort).
   */
  static from(reason: unknown): MnemoError {
    return fromFailure(reason, undefined);
  }
}

/**
 * The error a failed call stands for, given the signal the call ran with: a
 * stream the transport cancelled although nobody aborted the call is a lost
 * connection, which gRPC reports as UNAVAILABLE.
 *
 * @internal
 */
export function callError(reason: unknown, signal: AbortSignal | undefined): MnemoError {
  return fromFailure(reason, signal);
}

function fromFailure(reason: unknown, signal: AbortSignal | undefined): MnemoError {
  if (reason instanceof MnemoError) {
    return reason;
  }
  if (reason instanceof ConnectError) {
    if (signal !== undefined && !signal.aborted && reason.code === Code.Canceled && !isWire(reason)) {
      return new MnemoError(reason.rawMessage, { code: "unavailable", cause: reason });
    }
    if (signal?.aborted && !isWire(reason) && reason.code !== Code.DeadlineExceeded) {
      // Our signal was aborted (close(), or the caller's signal): connect wraps the
      // abort reason, as INTERNAL in some versions; the call was cancelled.
      return reason.cause instanceof MnemoError
        ? reason.cause
        : new MnemoError(reason.rawMessage, { code: "cancelled", cause: reason });
    }
    const details: Any[] = reason.details.map((d) =>
      "desc" in d
        ? anyPack(d.desc, create(d.desc, d.value))
        : create(AnySchema, { typeUrl: `type.googleapis.com/${d.type}`, value: d.value }),
    );
    return fromParts(transportCode(reason), reason.rawMessage, details, reason);
  }
  if (reason instanceof Error && reason.name === "AbortError") {
    return new MnemoError(reason.message, { code: "cancelled", cause: reason });
  }
  const message = reason instanceof Error ? reason.message : String(reason);
  return new MnemoError(message, { code: "unknown", cause: reason });
}

// Node network failures that mean "the server could not be reached or went
// away": gRPC reports them as UNAVAILABLE, which is what retries and watch
// reconnects key on, so the client does too (connect-node reports some of them
// as ABORTED or INTERNAL).
const NETWORK_ERRORS = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ERR_HTTP2_GOAWAY_SESSION",
  "ERR_HTTP2_SESSION_ERROR",
  "ERR_HTTP2_STREAM_CANCEL",
  "ERR_HTTP2_INVALID_SESSION",
  "ERR_HTTP2_ERROR",
  "ERR_HTTP2_STREAM_ERROR",
  "ERR_STREAM_PREMATURE_CLOSE",
]);

// A failed TLS handshake (an untrusted or misnamed certificate, a refused
// client certificate) is UNAVAILABLE in gRPC too.
const TLS_ERROR =
  /^(ERR_SSL_|ERR_TLS_|UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED_CERT|CERT_|HOSTNAME_MISMATCH)/;

function isWire(error: ConnectError): boolean {
  return (error as { isWireError?: boolean }).isWireError === true;
}

function transportCode(error: ConnectError): number {
  if (error.code === Code.Canceled || error.code === Code.DeadlineExceeded) {
    return error.code;
  }
  if (!isWire(error)) {
    for (let e: unknown = error; e instanceof Error; e = e.cause) {
      const code = (e as { code?: unknown }).code;
      if (typeof code === "string" && (NETWORK_ERRORS.has(code) || TLS_ERROR.test(code))) {
        return Code.Unavailable;
      }
      if (e.cause === e) {
        break;
      }
    }
  }
  return error.code;
}

function durationMs(d: Duration | undefined): number | null {
  if (d === undefined) {
    return null;
  }
  return Number(d.seconds) * 1000 + d.nanos / 1e6;
}

const TYPE_PREFIX = /^.*\//;

function fromParts(code: number, message: string, anys: readonly Any[], cause: unknown): MnemoError {
  let reason = "";
  let metadata: Record<string, string> = {};
  let retryAfterMs: number | null = null;
  const violations: FieldViolation[] = [];
  const details: Message[] = [];
  for (const any of anys) {
    const type = any.typeUrl.replace(TYPE_PREFIX, "");
    try {
      if (type === ErrorInfoSchema.typeName) {
        const info = fromBinary(ErrorInfoSchema, any.value);
        reason = info.reason;
        metadata = { ...info.metadata };
        details.push(info);
        continue;
      }
      if (type === BadRequestSchema.typeName) {
        const bad = fromBinary(BadRequestSchema, any.value);
        for (const v of bad.fieldViolations) {
          violations.push({ field: v.field, description: v.description, reason: v.reason });
        }
        details.push(bad);
        continue;
      }
      if (type === RetryInfoSchema.typeName) {
        const retry = fromBinary(RetryInfoSchema, any.value);
        retryAfterMs = durationMs(retry.retryDelay);
        details.push(retry);
        continue;
      }
    } catch {
      // An undecodable detail is kept as it came.
    }
    details.push(any);
  }
  return new MnemoError(message, {
    code: codeName(code),
    reason,
    details,
    fieldViolations: violations,
    metadata,
    retryAfterMs,
    requestId: metadata["request_id"] ?? "",
    cause,
  });
}
