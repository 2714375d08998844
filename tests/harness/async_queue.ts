/**
 * An unbounded async queue: push from one side, `for await` from the other; `fail`
 * ends the consumer with an error.
 *
 * @module
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  readonly #items: T[] = [];
  #waiting?: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void };
  #error: unknown;
  #ended = false;

  push(item: T): void {
    if (this.#ended) return;
    if (this.#waiting) {
      const w = this.#waiting;
      this.#waiting = undefined;
      w.resolve({ value: item, done: false });
    } else this.#items.push(item);
  }

  fail(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#waiting?.reject(error);
    this.#waiting = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.#items.length) {
          return Promise.resolve({ value: this.#items.shift()!, done: false });
        }
        if (this.#ended) return Promise.reject(this.#error);
        return new Promise((resolve, reject) => (this.#waiting = { resolve, reject }));
      },
      return: () => {
        this.#ended = true;
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }
}
