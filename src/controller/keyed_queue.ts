/**
 * Runs async jobs one at a time per key and concurrently across keys: events of one
 * sandbox apply in order, and one slow or retrying sandbox never stalls the others.
 * Memory is bounded by the keys with work in flight.
 *
 * @module
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<void>>();

  /** Runs `job` after every job queued earlier for `key`; settles with its outcome. */
  run<T>(key: string, job: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(job);
    const tail = result.then(() => {}, () => {});
    this.#tails.set(key, tail);
    tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /** Keys with queued or running jobs. */
  get size(): number {
    return this.#tails.size;
  }

  /** The keys with queued or running jobs. */
  keys(): string[] {
    return [...this.#tails.keys()];
  }

  /** Resolves once every job queued so far has settled. */
  async drain(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all(this.#tails.values());
  }
}
