// Waiting for a condition in tests, instead of sleeping and hoping.

import { setTimeout as sleep } from "node:timers/promises";

/** Polls `condition` every 10 ms until it holds; fails after `timeoutMs`. */
export async function until(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(10);
  }
}

/** Waits until a watch has caught up with the server (its first progress
 * notification sets `revision`); the watch must have a `next()` pending. */
export function caughtUp(watch: { revision: number | null }): Promise<void> {
  return until(() => watch.revision !== null, "the watch to catch up");
}
