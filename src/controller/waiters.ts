/**
 * Exit notifications for blocked `wait` calls. The controller calls `notify` right
 * after it commits an exit, with the record as committed; a waiter registers *before*
 * reading the store, so an exit committed in between is either seen by the read or
 * delivered by the notify.
 *
 * @module
 */

export interface Waiter<T> {
  /** Resolves on the next notify of the key (with its value); rejects when aborted or closed. */
  readonly promise: Promise<T | undefined>;
  /** Unregisters (idempotent); call it in a finally. */
  dispose(): void;
}

type Settle<T> = (outcome: { error: unknown } | { value: T | undefined }) => void;

export class ExitWaiters<T = undefined> {
  readonly #byKey = new Map<string, Set<Settle<T>>>();
  #closed: unknown = undefined;
  #count = 0;

  /** Waiters currently registered. */
  get size(): number {
    return this.#count;
  }

  register(key: string, signal?: AbortSignal): Waiter<T> {
    let settle!: Settle<T>;
    const promise = new Promise<T | undefined>((resolve, reject) => {
      settle = (outcome) => ("error" in outcome ? reject(outcome.error) : resolve(outcome.value));
    });
    // A waiter that is disposed without being awaited must not surface as unhandled.
    promise.catch(() => {});
    if (this.#closed !== undefined) {
      settle({ error: this.#closed });
      return { promise, dispose: () => {} };
    }
    let set = this.#byKey.get(key);
    if (!set) this.#byKey.set(key, set = new Set());
    const entry: Settle<T> = (outcome) => {
      dispose();
      settle(outcome);
    };
    const onAbort = () => entry({ error: signal!.reason });
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

  /** Wakes every waiter of `key`, handing it `value`. */
  notify(key: string, value?: T): void {
    const set = this.#byKey.get(key);
    if (!set) return;
    for (const entry of [...set]) entry({ value });
  }

  /** Rejects every current waiter of `key` with `reason`. */
  fail(key: string, reason: unknown): void {
    const set = this.#byKey.get(key);
    if (!set) return;
    for (const entry of [...set]) entry({ error: reason });
  }

  /** Rejects every current and future waiter with `reason` (shutdown). */
  close(reason: unknown): void {
    this.#closed = reason;
    for (const set of [...this.#byKey.values()]) {
      for (const entry of [...set]) entry({ error: reason });
    }
  }
}
