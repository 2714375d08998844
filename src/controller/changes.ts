/**
 * The feed of record changes behind `Watch`: every committed change of a record is
 * published to every watcher. Each watcher has a bounded buffer: one that falls too far
 * behind is ended with RESOURCE_EXHAUSTED instead of growing memory.
 *
 * @module
 */
import { ResourceExhaustedError } from "../errors.ts";
import type { SandboxRecord } from "../store/types.ts";

export interface Change {
  record: SandboxRecord;
  /**
   * The record is gone from the store: it expired (retention), or a newer container with
   * the same id replaced it (the new record is the next change).
   */
  removed?: boolean;
}

/** @default 10_000 — changes a watcher may lag behind before it is ended. */
export const DEFAULT_WATCH_BUFFER = 10_000;

interface Subscriber {
  push(change: Change): void;
}

export class ChangeFeed {
  readonly #subscribers = new Set<Subscriber>();

  /** Watchers connected now. */
  get size(): number {
    return this.#subscribers.size;
  }

  publish(change: Change): void {
    for (const s of this.#subscribers) s.push(change);
  }

  /** Changes from now on, until `signal` aborts (then the iteration just ends). */
  async *subscribe(
    options: { signal?: AbortSignal; buffer?: number } = {},
  ): AsyncGenerator<Change, void, undefined> {
    const limit = options.buffer ?? DEFAULT_WATCH_BUFFER;
    const queue: Change[] = [];
    let wake: (() => void) | undefined;
    let overflowed = false;
    const subscriber: Subscriber = {
      push(change) {
        if (queue.length >= limit) overflowed = true;
        else queue.push(change);
        wake?.();
      },
    };
    const onAbort = () => wake?.();
    this.#subscribers.add(subscriber);
    options.signal?.addEventListener("abort", onAbort);
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (overflowed) {
          throw new ResourceExhaustedError(
            `watcher fell more than ${limit} changes behind; watch again (with a snapshot) to resume`,
          );
        }
        if (options.signal?.aborted) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.#subscribers.delete(subscriber);
      options.signal?.removeEventListener("abort", onAbort);
    }
  }
}
