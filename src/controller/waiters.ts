/**
 * Exit notifications for blocked `wait` calls. The controller calls `notify` right
 * after it commits an exit; a waiter registers *before* reading the store, so an exit
 * committed in between is either seen by the read or delivered by the notify.
 *
 * @module
 */

export interface Waiter {
  /** Resolves on the next notify of the key; rejects when aborted or closed. */
  readonly promise: Promise<void>;
  /** Unregisters (idempotent); call it in a finally. */
  dispose(): void;
}

export class ExitWaiters {
  readonly #byKey = new Map<string, Set<(err?: unknown) => void>>();
  #closed: unknown = undefined;
  #count = 0;

  /** Waiters currently registered. */
  get size(): number {
    return this.#count;
  }

  register(key: string, signal?: AbortSignal): Waiter {
    let settle!: (err?: unknown) => void;
    const promise = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === undefined ? resolve() : reject(err));
    });
    // A waiter that is disposed without being awaited must not surface as unhandled.
    promise.catch(() => {});
    if (this.#closed !== undefined) {
      settle(this.#closed);
      return { promise, dispose: () => {} };
    }
    let set = this.#byKey.get(key);
    if (!set) this.#byKey.set(key, set = new Set());
    const entry = (err?: unknown) => {
      dispose();
      settle(err);
    };
    const onAbort = () => entry(signal!.reason);
    let disposed = false;
    const dispose = () => {
      if (disposed) return;
      disposed = true;
      this.#count--;
      signal?.removeEventListener("abort", onAbort);
      const s = this.#byKey.get(key);
      s?.delete(entry);
      if (s?.size === 0) this.#byKey.delete(key);
    };
    set.add(entry);
    this.#count++;
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    return { promise, dispose };
  }

  /** Wakes every waiter of `key`. */
  notify(key: string): void {
    const set = this.#byKey.get(key);
    if (!set) return;
    for (const entry of [...set]) entry();
  }

  /** Rejects every current and future waiter with `reason` (shutdown). */
  close(reason: unknown): void {
    this.#closed = reason;
    for (const set of [...this.#byKey.values()]) {
      for (const entry of [...set]) entry(reason);
    }
  }
}
