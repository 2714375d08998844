/**
 * The sandboxes podsandboxd owns as containerd's sandbox controller (serve --sandboxer
 * NAME): Create keeps the request durably; Start runs the pause container through a
 * SandboxRuntime; Stop kills it and blocks until its exit is handled; Shutdown removes
 * everything Start made and forgets the id. Their exits are handled like the reference
 * controller's — task deleted with kill, then recorded — by the tracker, which learns
 * here which ids are owned. Lifecycle calls of one sandbox run one at a time.
 *
 * @module
 */
import type { ContainerdClient } from "../containerd/types.ts";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "../errors.ts";
import { logger } from "../log.ts";
import type { OwnedSandbox } from "../store/owned.ts";
import type { SandboxKey, SandboxRecord, SandboxStore } from "../store/types.ts";
import { delay } from "./backoff.ts";
import { KeyedQueue } from "./keyed_queue.ts";
import { errorText, type SandboxTracker } from "./tracker.ts";

const log = logger("controller");
const SIGTERM = 15;
const SIGKILL = 9;

/** What Start made: the pause process and its container. */
export interface StartedSandbox {
  pid: number;
  /** The container's creation time (RFC 3339). */
  createdAt: string;
  /** Labels for containerd's CRI (Start's response). */
  labels: Record<string, string>;
}

/**
 * The containerd-side work of running a pod sandbox (src/sandboxer/ implements it over
 * containerd's API; tests use a fake).
 */
export interface SandboxRuntime {
  /** Refuses a Create the runtime could never start (InvalidArgumentError naming why). */
  check?(sandbox: OwnedSandbox): void;
  /**
   * Runs the sandbox's pause container and task. Undoes its own steps when a later one
   * fails or `signal` aborts: containerd's CRI never calls Shutdown after a failed Start.
   */
  start(sandbox: OwnedSandbox, options: { signal?: AbortSignal }): Promise<StartedSandbox>;
  /** Removes the task (with kill), container, snapshot and files; idempotent. */
  shutdown(sandbox: OwnedSandbox, options: { signal?: AbortSignal }): Promise<void>;
  /** Releases what only a running sandbox needs (its shm), once Stop saw it exit; idempotent. */
  stopped?(sandbox: OwnedSandbox): Promise<void>;
}

export interface OwnedSandboxesOptions {
  /** The sandboxer name requests carry for the sandboxes this agent owns. */
  sandboxer: string;
  runtime: SandboxRuntime;
  client: ContainerdClient;
  store: SandboxStore;
  tracker: SandboxTracker;
  /** Blocks until the sandbox's exit is recorded (the controller's wait). */
  waitForExit(key: SandboxKey, signal?: AbortSignal): Promise<SandboxRecord>;
  /** Releases waiters of a sandbox that will never exit (forgotten before it ran). */
  releaseWaiters(key: SandboxKey, reason: Error): void;
  now(): string;
}

/** A Create request as the server decoded it: everything but the time it came. */
export type CreateRequest = Omit<OwnedSandbox, "createdAt">;

export class OwnedSandboxes {
  readonly sandboxer: string;
  readonly #options: OwnedSandboxesOptions;
  readonly #lifecycle = new KeyedQueue();

  constructor(options: OwnedSandboxesOptions) {
    this.sandboxer = options.sandboxer;
    this.#options = options;
  }

  /** Tells the tracker which sandboxes are owned (after an agent restart). */
  async restore(namespace: string): Promise<number> {
    const ids = await this.#options.store.owned.ids(namespace);
    for (const id of ids) this.#options.tracker.own(id);
    return ids.length;
  }

  /** The stored Create of a sandbox, or null. */
  find(key: SandboxKey): Promise<OwnedSandbox | null> {
    return this.#options.store.owned.get(key);
  }

  /**
   * Keeps the request durably; nothing runs yet. Repeating an identical Create is fine;
   * a different one for a kept id is AlreadyExistsError.
   */
  create(request: CreateRequest): Promise<OwnedSandbox> {
    const key = { namespace: request.namespace, id: request.id };
    if (!request.runtime.name) {
      throw new InvalidArgumentError(
        `Create of sandbox ${request.id} names no runtime (sandbox.runtime.name, e.g. ` +
          `"io.containerd.runc.v2")`,
      );
    }
    return this.#lifecycle.run(request.id, async () => {
      const wanted: OwnedSandbox = { ...request, createdAt: this.#options.now() };
      this.#options.runtime.check?.(wanted);
      let kept: OwnedSandbox;
      try {
        kept = await this.#options.store.owned.create(wanted);
      } catch (err) {
        if (err instanceof RangeError) throw new InvalidArgumentError(err.message, { cause: err });
        throw err;
      }
      if (kept !== wanted && !sameRequest(kept, wanted)) {
        throw new AlreadyExistsError(
          `sandbox ${key.namespace}/${key.id} was created already (at ${kept.createdAt}) ` +
            "with a different configuration; Shutdown it first",
        );
      }
      if (kept === wanted) {
        log.info("sandbox {namespace}/{id} created (runtime {runtime}, netns {netns})", {
          ...key,
          runtime: request.runtime.name,
          netns: request.netnsPath || "host",
        });
      }
      return kept;
    });
  }

  /**
   * Runs the sandbox. Starting a running sandbox again answers what it runs; starting
   * one that has exited is FailedPreconditionError (a sandbox runs once).
   */
  start(key: SandboxKey, options: { signal?: AbortSignal } = {}): Promise<StartedSandbox> {
    return this.#lifecycle.run(key.id, async () => {
      const owned = await this.#require(key, "Start");
      const record = await this.#options.store.get(key);
      if (record?.exit) {
        throw new FailedPreconditionError(
          `sandbox ${key.namespace}/${key.id} has run already and exited ` +
            `(status ${record.exit.status}); a sandbox is started once`,
        );
      }
      if (record?.state === "SANDBOX_READY" && record.pid && record.createdAt) {
        return { pid: record.pid, createdAt: record.createdAt, labels: {} };
      }
      // Owned before the task exists: its exit, however early, is reaped.
      this.#options.tracker.own(key.id);
      const started = await this.#options.runtime.start(owned, options);
      // READY at once: containerd's CRI asks Status right after Start.
      await this.#options.store.markRunning(key, started.pid, {
        pid: started.pid,
        createdAt: started.createdAt,
      });
      log.info("sandbox {namespace}/{id} started (pid {pid})", { ...key, pid: started.pid });
      return started;
    });
  }

  /**
   * Stops the sandbox and returns once its exit is handled (task deleted, exit recorded).
   * `timeoutSecs` 0: SIGKILL at once; else SIGTERM, then SIGKILL after that many seconds.
   * Idempotent; a sandbox that never started has nothing to stop.
   */
  stop(
    key: SandboxKey,
    options: { timeoutSecs?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    return this.#lifecycle.run(key.id, async () => {
      const owned = await this.#require(key, "Stop");
      const record = await this.#options.store.get(key);
      if (!record) return;
      if (!record.exit) await this.#stop(key, options);
      await this.#options.runtime.stopped?.(owned);
    });
  }

  /** Kills the sandbox (TERM first with a timeout) and resolves once its exit is recorded. */
  async #stop(key: SandboxKey, options: { timeoutSecs?: number; signal?: AbortSignal }) {
    const exited = this.#options.waitForExit(key, options.signal);
    exited.catch(() => {});
    const timeoutSecs = options.timeoutSecs ?? 0;
    if (timeoutSecs > 0) {
      await this.#kill(key, SIGTERM, options.signal);
      const grace = AbortSignal.timeout(timeoutSecs * 1000);
      const signal = options.signal ? AbortSignal.any([options.signal, grace]) : grace;
      const done = await Promise.race([
        exited.then(() => true),
        delay(timeoutSecs * 1000, signal).then(() => false, () => false),
      ]);
      if (done) return;
      options.signal?.throwIfAborted();
    }
    await this.#kill(key, SIGKILL, options.signal);
    await exited;
  }

  /** Removes what Start made and forgets the sandbox; unknown ids are fine. */
  shutdown(key: SandboxKey, options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.#lifecycle.run(key.id, async () => {
      const owned = await this.find(key);
      if (!owned) return;
      await this.#options.runtime.shutdown(owned, options);
      await this.#options.store.owned.delete(key);
      // A later sandbox with this id is not ours unless it is created through us again.
      this.#options.tracker.disown(key.id);
      const record = await this.#options.store.get(key);
      if (!record?.exit) {
        this.#options.releaseWaiters(
          key,
          new NotFoundError(`sandbox ${key.namespace}/${key.id} was shut down before it ran`),
        );
      }
      log.info("sandbox {namespace}/{id} shut down", { ...key });
    });
  }

  async #require(key: SandboxKey, call: string): Promise<OwnedSandbox> {
    const owned = await this.find(key);
    if (owned) return owned;
    throw new NotFoundError(
      `${call}: sandbox ${key.namespace}/${key.id} was not created through sandboxer ` +
        `${this.sandboxer} (Create comes first), or was shut down`,
    );
  }

  /** Signals the sandbox's processes; a task already gone is fine (its exit is on its way). */
  async #kill(key: SandboxKey, signal: number, abort?: AbortSignal): Promise<void> {
    try {
      await this.#options.client.killTask(key.namespace, key.id, signal, {
        all: true,
        signal: abort,
      });
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof FailedPreconditionError) {
        log.debug("stop {namespace}/{id}: {error}", { ...key, error: errorText(err) });
        return;
      }
      throw err;
    }
  }
}

/** Two Creates ask for the same sandbox (times aside). */
function sameRequest(a: OwnedSandbox, b: OwnedSandbox): boolean {
  const strip = ({ createdAt: _, ...rest }: OwnedSandbox) => rest;
  return JSON.stringify(strip(a), bytesAsArrays) === JSON.stringify(strip(b), bytesAsArrays);
}

function bytesAsArrays(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? [...value] : value;
}
