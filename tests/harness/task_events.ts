/**
 * containerd's own account of task exits and deletes in one namespace, recorded by the
 * test itself (independently of the agent): the reference an agent's answers are
 * compared with, and the clock for "how soon did someone delete the task".
 *
 * @module
 */
import { GrpcContainerdClient } from "../../src/containerd/grpc_client.ts";
import type { ContainerdEvent } from "../../src/containerd/types.ts";
import { quoteFilterValue } from "../../src/containerd/filters.ts";

const SYNC_TOPIC = "/psd-test/sync";
const SYNC_TYPE_URL = "psd-test.Sync";

export type TaskExitEvent = Extract<ContainerdEvent, { kind: "task-exit" }>;
export type TaskDeleteEvent = Extract<ContainerdEvent, { kind: "task-delete" }>;

/** The first exit or delete of a task, as it arrived (wall-clock ms). */
export type TaskArrival = { kind: "exit" | "delete"; id: string; at: number; exitedAt?: string };

export class TaskEvents {
  readonly #client: GrpcContainerdClient;
  readonly #abort = new AbortController();
  readonly #exits = new Map<string, TaskExitEvent>();
  readonly #deletes = new Map<string, TaskDeleteEvent>();
  /** Wall-clock ms (sub-ms resolution) at which each exit and delete was received. */
  readonly #deleteAt = new Map<string, number>();
  readonly #listeners = new Set<() => void>();
  readonly #syncs = new Set<string>();
  #failure: unknown;
  readonly #done: Promise<void>;
  readonly #onArrival?: (arrival: TaskArrival) => void;

  private constructor(
    address: string,
    readonly namespace: string,
    onArrival?: (arrival: TaskArrival) => void,
  ) {
    this.#onArrival = onArrival;
    this.#client = new GrpcContainerdClient({ address });
    const ns = quoteFilterValue(namespace);
    const events = this.#client.subscribe([
      `topic=="/tasks/exit",namespace==${ns}`,
      `topic=="/tasks/delete",namespace==${ns}`,
      `topic==${quoteFilterValue(SYNC_TOPIC)},namespace==${ns}`,
    ], { signal: this.#abort.signal });
    this.#done = this.#consume(events);
  }

  /**
   * Subscribes and resolves once the subscription is live (a marker it published came
   * back): every exit or delete after that is seen.
   */
  static async start(
    address: string,
    namespace: string,
    options: { onArrival?: (arrival: TaskArrival) => void } = {},
  ): Promise<TaskEvents> {
    const events = new TaskEvents(address, namespace, options.onArrival);
    try {
      await events.#sync();
      return events;
    } catch (err) {
      await events.close();
      throw err;
    }
  }

  async #consume(events: AsyncIterable<ContainerdEvent>): Promise<void> {
    try {
      for await (const e of events) {
        const at = performance.timeOrigin + performance.now();
        if (e.kind === "task-exit" && e.processId === e.containerId) {
          if (!this.#exits.has(e.containerId)) {
            this.#exits.set(e.containerId, e);
            this.#onArrival?.({ kind: "exit", id: e.containerId, at, exitedAt: e.exitedAt });
          }
        } else if (e.kind === "task-delete") {
          // Only whole tasks are deleted (exec processes never produce /tasks/delete).
          if (!this.#deletes.has(e.containerId)) {
            this.#deletes.set(e.containerId, e);
            this.#deleteAt.set(e.containerId, at);
            this.#onArrival?.({ kind: "delete", id: e.containerId, at, exitedAt: e.exitedAt });
          }
        } else if (e.kind === "ignored" && e.typeUrl.startsWith(SYNC_TYPE_URL + ".")) {
          this.#syncs.add(e.typeUrl.slice(SYNC_TYPE_URL.length + 1));
        }
        for (const l of [...this.#listeners]) l();
      }
    } catch (err) {
      if (!this.#abort.signal.aborted) this.#failure = err;
    }
    for (const l of [...this.#listeners]) l();
  }

  /** Publishes markers until one comes back (one published before registration is lost). */
  async #sync(): Promise<void> {
    const nonce = crypto.randomUUID();
    const seen = this.#until(
      `the subscription's marker ${nonce}`,
      () => this.#syncs.has(nonce),
      10_000,
    );
    const payload = { typeUrl: `${SYNC_TYPE_URL}.${nonce}`, value: new Uint8Array() };
    let synced = false;
    seen.then(() => (synced = true), () => (synced = true));
    while (!synced) {
      await this.#client.publish(this.namespace, SYNC_TOPIC, payload);
      await Promise.race([seen.catch(() => {}), new Promise((r) => setTimeout(r, 100))]);
    }
    await seen;
  }

  #until<T>(what: string, value: () => T | undefined | false, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = value();
        if (v) {
          cleanup();
          resolve(v);
        } else if (this.#failure !== undefined) {
          cleanup();
          reject(new Error(`containerd event stream failed: ${this.#failure}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  /** The TaskExit of `id`'s init process (already seen or future). */
  exit(id: string, timeoutMs = 10_000): Promise<TaskExitEvent> {
    return this.#until(`TaskExit of ${this.namespace}/${id}`, () => this.#exits.get(id), timeoutMs);
  }

  /** The TaskDelete of `id`'s task (already seen or future). */
  deleted(id: string, timeoutMs = 10_000): Promise<TaskDeleteEvent> {
    return this.#until(
      `TaskDelete of ${this.namespace}/${id}`,
      () => this.#deletes.get(id),
      timeoutMs,
    );
  }

  /**
   * Resolves once `id`'s task is deleted: with its TaskDelete, or without one once
   * `isGone()` (polled every 50 ms) says the task is gone. containerd 2.1 sometimes
   * publishes no TaskDelete when the shim exits right after a delete (seen with 10
   * concurrent deletes: 1–2 of 10 without an event; never on 1.6 or 1.7).
   */
  async taskGone(
    id: string,
    isGone: () => Promise<boolean>,
    timeoutMs = 10_000,
  ): Promise<{ event?: TaskDeleteEvent; observedAt: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const event = this.#deletes.get(id);
      if (event) return { event, observedAt: this.#deleteAt.get(id)! };
      if (await isGone()) {
        // A TaskDelete may still be on its way: prefer it when it comes right after.
        await new Promise((r) => setTimeout(r, 50));
        const late = this.#deletes.get(id);
        return late
          ? { event: late, observedAt: this.#deleteAt.get(id)! }
          : { observedAt: performance.timeOrigin + performance.now() };
      }
      if (this.#failure !== undefined) {
        throw new Error(`containerd event stream failed: ${this.#failure}`);
      }
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${this.namespace}/${id}'s task to go`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#done;
    this.#client.close();
  }
}
