// When and how long to wait before retrying a failed call (the twin of the
// Python SDK's mnemo._retry).

import type { MnemoError } from "./errors.js";

/** The settings of a `RetryPolicy`; every field is optional. */
export interface RetryPolicyOptions {
  /** Tries per call, the first included; 1 turns retries off. Default 4. */
  readonly maxAttempts?: number;
  /** The wait before the first retry, in milliseconds. Default 100. */
  readonly initialBackoffMs?: number;
  /** The longest wait between tries, in milliseconds. Default 5000. */
  readonly maxBackoffMs?: number;
  /** How much each wait grows over the one before. Default 2. */
  readonly multiplier?: number;
  /** Each wait is stretched by a random factor in [1, 1 + jitter]. Default 0.2. */
  readonly jitter?: number;
}

/**
 * Exponential backoff with jitter for UNAVAILABLE and RESOURCE_EXHAUSTED.
 *
 * A call is tried at most `maxAttempts` times. The n-th retry waits
 * `min(maxBackoffMs, initialBackoffMs * multiplier ** (n - 1))`, or the
 * server's google.rpc.RetryInfo delay when that is longer, stretched by a
 * random factor in [1, 1 + jitter]. RESOURCE_EXHAUSTED is retried only when
 * the server sent RetryInfo (a rate limit, not a quota). No retry outlives
 * the call's timeout. Writes are retried only when they carry a request id.
 *
 * @example new RetryPolicy({ maxAttempts: 1 }) // never retry
 */
export class RetryPolicy {
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  readonly multiplier: number;
  readonly jitter: number;

  constructor(options: RetryPolicyOptions = {}) {
    this.maxAttempts = options.maxAttempts ?? 4;
    this.initialBackoffMs = options.initialBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.multiplier = options.multiplier ?? 2;
    this.jitter = options.jitter ?? 0.2;
    if (!(this.maxAttempts >= 1)) {
      throw new RangeError("maxAttempts must be at least 1");
    }
    if (
      !(this.initialBackoffMs >= 0) ||
      !(this.maxBackoffMs >= 0) ||
      !(this.multiplier >= 1) ||
      !(this.jitter >= 0)
    ) {
      throw new RangeError("backoffs and jitter must not be negative, and multiplier at least 1");
    }
    Object.freeze(this);
  }

  /** Whether the error is worth retrying at all. */
  retryable(error: MnemoError): boolean {
    if (error.code === "unavailable") {
      return true;
    }
    return error.code === "resource_exhausted" && error.retryAfterMs !== null;
  }

  /** The wait in milliseconds before the `retry`-th retry (1-based), jitter included. */
  backoff(retry: number, error?: MnemoError | null): number {
    let base = Math.min(this.maxBackoffMs, this.initialBackoffMs * this.multiplier ** (retry - 1));
    if (error && error.retryAfterMs !== null) {
      base = Math.max(base, error.retryAfterMs);
    }
    return base * (1 + this.jitter * Math.random());
  }

  /** The wait in milliseconds before trying again after `attempt` attempts
   * failed with `error`, or null when the call should fail now. */
  delay(attempt: number, error: MnemoError): number | null {
    if (attempt >= this.maxAttempts || !this.retryable(error)) {
      return null;
    }
    return this.backoff(attempt, error);
  }
}

export const DEFAULT_RETRY = new RetryPolicy();
