/**
 * Exponential backoff with jitter, and an abortable delay.
 *
 * @module
 */

export interface BackoffOptions {
  /** First delay. */
  initialMs: number;
  /** Cap of the delay. */
  maxMs: number;
  /** @default 2 */
  factor?: number;
  /** Fraction of each delay randomised (±). @default 0.2 */
  jitter?: number;
}

/** Retry of failed exit handling: 1 s doubling to 5 min, as containerd's CRI backs off events. */
export const EXIT_RETRY_BACKOFF: BackoffOptions = { initialMs: 1_000, maxMs: 300_000 };

/**
 * Between sessions with containerd: quick and capped low, the socket is local (waiting
 * for containerd itself to come back is the channel's job, see Controller).
 */
export const RECONNECT_BACKOFF: BackoffOptions = { initialMs: 50, maxMs: 400 };

export class Backoff {
  readonly #options: Required<BackoffOptions>;
  #attempt = 0;

  constructor(options: BackoffOptions, readonly random: () => number = Math.random) {
    this.#options = { factor: 2, jitter: 0.2, ...options };
  }

  /** The delay before the next attempt; grows until `maxMs`. */
  next(): number {
    const { initialMs, maxMs, factor, jitter } = this.#options;
    const base = Math.min(maxMs, initialMs * factor ** this.#attempt);
    this.#attempt++;
    const spread = base * jitter * (this.random() * 2 - 1);
    return Math.max(0, Math.min(maxMs, Math.round(base + spread)));
  }

  /** Attempts made since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
