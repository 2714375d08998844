/**
 * The pod-sandbox controller: follows containerd's events for the sandboxes of one
 * namespace, records their exits durably, and answers wait/status from the store.
 *
 * A session with containerd runs in a fixed order, repeated after every reconnect:
 *
 * 1. subscribe to events, publish a marker and wait until it comes back, so the
 *    subscription is known to be live before anything is listed;
 * 2. list sandbox containers and tasks, and record what they prove (running tasks,
 *    STOPPED tasks with containerd's exit status, new containers);
 * 3. publish a second marker; once it is back, every event published before the
 *    listing has been applied, and only then are exits inferred from absence (a
 *    sandbox whose task is gone without an exit ever seen gets status "unknown");
 * 4. go on applying events live, with a periodic resync (steps 2-3) as a safety net.
 *
 * Events are applied per sandbox in order (KeyedQueue) and concurrently across
 * sandboxes; a failed step is retried with backoff without stalling other sandboxes.
 *
 * @module
 */
import { andFilter, quoteFilterValue } from "../containerd/filters.ts";
import { MARKER_TOPIC, markerPayload, WATCHED_TOPICS } from "../containerd/events.ts";
import type {
  ContainerdClient,
  ContainerdEvent,
  ContainerInfo,
  TaskInfo,
} from "../containerd/types.ts";
import { FailedPreconditionError, NotFoundError, UnavailableError } from "../errors.ts";
import { logger } from "../log.ts";
import { nodePlatform, type Platform } from "../platform.ts";
import type {
  ListFilter,
  SandboxDescription,
  SandboxExit,
  SandboxKey,
  SandboxRecord,
  SandboxStore,
} from "../store/types.ts";
import { UNKNOWN_EXIT_STATUS } from "../store/types.ts";
import { instantFromDate, instantToMillis } from "../time.ts";
import {
  Backoff,
  type BackoffOptions,
  delay,
  EXIT_RETRY_BACKOFF,
  RECONNECT_BACKOFF,
} from "./backoff.ts";
import { describeContainer } from "./describe.ts";
import { KeyedQueue } from "./keyed_queue.ts";
import { ExitWaiters } from "./waiters.ts";

/**
 * What the agent does with a sandbox's task when its init process exits:
 * - "never": record the exit only (the sandbox's owner, e.g. containerd's CRI, deletes
 *   the task; a second deleter races it and leaks shims, containerd#12344);
 * - "always": like containerd's pod-sandbox controller, delete the task (with kill),
 *   then record the exit; waiters wake after the delete.
 */
export type ReapPolicy = "never" | "always";
export const REAP_POLICIES: readonly ReapPolicy[] = ["never", "always"];

/** @default 60_000 */
export const DEFAULT_RESYNC_INTERVAL_MS = 60_000;
/** A container younger than this without a task is starting, not dead. @default 10_000 */
export const DEFAULT_TASK_GRACE_MS = 10_000;
/** How long to wait for the subscription marker before going on without it. @default 2_000 */
export const DEFAULT_MARKER_TIMEOUT_MS = 2_000;

const SIGKILL = 9;

export interface ControllerOptions {
  /** containerd namespace whose sandboxes are followed. */
  namespace: string;
  /** containerd filters selecting sandbox containers (OR'ed, like containerd's). */
  filters: string[];
  reap: ReapPolicy;
  /** Periodic resync; 0 disables it. @default DEFAULT_RESYNC_INTERVAL_MS */
  resyncIntervalMs?: number;
  /** @default EXIT_RETRY_BACKOFF */
  retryBackoff?: BackoffOptions;
  /** @default RECONNECT_BACKOFF */
  reconnectBackoff?: BackoffOptions;
  /** @default DEFAULT_MARKER_TIMEOUT_MS */
  markerTimeoutMs?: number;
  /** @default DEFAULT_TASK_GRACE_MS */
  taskGraceMs?: number;
  /** @default () => new Date() */
  now?: () => Date;
}

export type ConnectionState = "connecting" | "connected" | "disconnected";

export interface ConnectionStatus {
  state: ConnectionState;
  /** When the state was entered (RFC 3339). */
  since: string;
  /** Why the agent is not connected. */
  error?: string;
  /** containerd's version, once connected. */
  containerdVersion?: string;
}

/** A record with its exit, as `wait` returns it. */
export type ExitedRecord = SandboxRecord & { exit: SandboxExit };

/** Exit details before the store stamps recordedAt. */
type ExitDraft = Omit<SandboxExit, "recordedAt">;

type Classification = { sandbox: false } | { sandbox: true; info?: ContainerInfo };

const log = logger("controller");

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class Controller {
  readonly namespace: string;
  readonly reap: ReapPolicy;
  readonly #client: ContainerdClient;
  readonly #store: SandboxStore;
  readonly #filters: string[];
  readonly #options: Required<Omit<ControllerOptions, "namespace" | "filters" | "reap">>;
  readonly #queue = new KeyedQueue();
  readonly #waiters = new ExitWaiters();
  /** Container id → whether it is a sandbox; rebuilt on every resync. */
  readonly #kinds = new Map<string, boolean>();
  /** Container id → sequence number of the last event dispatched for it. */
  readonly #lastEvent = new Map<string, number>();
  #eventSeq = 0;
  /** Marker nonce → callback run when the marker is dispatched. */
  readonly #markers = new Map<string, () => void>();
  /** Aborted by close(): ends retries. */
  readonly #stopping = new AbortController();
  #status: ConnectionStatus;
  readonly #firstOutcome = Promise.withResolvers<ConnectionStatus>();

  constructor(client: ContainerdClient, store: SandboxStore, options: ControllerOptions) {
    this.#client = client;
    this.#store = store;
    this.namespace = options.namespace;
    this.reap = options.reap;
    this.#filters = options.filters;
    this.#options = {
      resyncIntervalMs: options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS,
      retryBackoff: options.retryBackoff ?? EXIT_RETRY_BACKOFF,
      reconnectBackoff: options.reconnectBackoff ?? RECONNECT_BACKOFF,
      markerTimeoutMs: options.markerTimeoutMs ?? DEFAULT_MARKER_TIMEOUT_MS,
      taskGraceMs: options.taskGraceMs ?? DEFAULT_TASK_GRACE_MS,
      now: options.now ?? (() => new Date()),
    };
    this.#status = { state: "connecting", since: this.#nowText() };
  }

  // ---- public API -------------------------------------------------------------------

  /** The connection to containerd as of now. */
  get status(): ConnectionStatus {
    return this.#status;
  }

  /** Resolves with the outcome of the first session: "connected" (synced) or "disconnected". */
  firstOutcome(): Promise<ConnectionStatus> {
    return this.#firstOutcome.promise;
  }

  /** Blocked waiters right now. */
  get waiterCount(): number {
    return this.#waiters.size;
  }

  platform(): Platform {
    return nodePlatform();
  }

  /** The record of a sandbox; NotFoundError when the agent has none. */
  async get(key: SandboxKey): Promise<SandboxRecord> {
    const record = await this.#store.get(key);
    if (!record) throw this.#notFound(key);
    return record;
  }

  list(filter: ListFilter = {}): Promise<SandboxRecord[]> {
    return this.#store.list(filter);
  }

  /**
   * Blocks until the sandbox's exit is recorded and returns the record. Rejects with
   * NotFoundError for an unknown sandbox, with the signal's reason when it aborts, and
   * with UnavailableError when the agent shuts down.
   */
  async wait(key: SandboxKey, options: { signal?: AbortSignal } = {}): Promise<ExitedRecord> {
    for (;;) {
      // Register before reading: an exit committed in between is then never missed.
      const waiter = this.#waiters.register(keyOf(key), options.signal);
      try {
        const record = await this.#store.get(key);
        if (!record) throw this.#notFound(key);
        if (record.exit) return record as ExitedRecord;
        log.debug("waiting for sandbox {namespace}/{id}", { ...key });
        await waiter.promise.catch((err) => {
          log.debug("stopped waiting for sandbox {namespace}/{id}: {reason}", {
            ...key,
            reason: errorText(err),
          });
          throw err;
        });
      } finally {
        waiter.dispose();
      }
    }
  }

  /**
   * Follows containerd until `signal` aborts: sessions as described above, reconnecting
   * with jittered backoff. Never rejects; connection problems show in `status`.
   */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.#options.reconnectBackoff);
    while (!signal.aborted) {
      try {
        await this.#session(signal, () => backoff.reset());
      } catch (err) {
        if (signal.aborted) break;
        this.#setStatus({ state: "disconnected", error: errorText(err) });
        await delay(backoff.next(), signal).catch(() => {});
      }
    }
  }

  /** Ends retries and releases every waiter with UnavailableError ("shutting down"). */
  close(): void {
    this.#stopping.abort(new UnavailableError("podsandboxd is shutting down"));
    this.#waiters.close(new UnavailableError("podsandboxd is shutting down"));
  }

  /** Resolves when every event handed to the controller so far has been applied (tests). */
  settled(): Promise<void> {
    return this.#queue.drain();
  }

  // ---- session ----------------------------------------------------------------------

  async #session(signal: AbortSignal, onConnected: () => void): Promise<void> {
    const session = new AbortController();
    const sessionSignal = AbortSignal.any([signal, session.signal]);
    try {
      const version = await this.#reachContainerd(sessionSignal);
      const events = this.#client.subscribe(this.#subscriptionFilters(), {
        signal: sessionSignal,
      });
      const pump = this.#pump(events);
      // The stream failing at any point ends the session.
      const streamEnded = pump.then(() => {
        throw new UnavailableError("containerd closed the event stream");
      });
      streamEnded.catch(() => {});
      await Promise.race([
        (async () => {
          await this.#marker(sessionSignal);
          await this.#resync(sessionSignal);
        })(),
        streamEnded,
      ]);
      onConnected();
      this.#setStatus({ state: "connected", containerdVersion: version.version });
      if (this.#options.resyncIntervalMs > 0) this.#resyncPeriodically(sessionSignal);
      await streamEnded;
    } finally {
      session.abort();
    }
  }

  /**
   * Resolves once containerd answers. When it is not reachable, reports "disconnected"
   * (once) and waits for the channel to connect — grpc-js retries the socket every few
   * hundred ms — instead of polling.
   */
  async #reachContainerd(signal: AbortSignal): Promise<{ version: string }> {
    try {
      return await this.#client.version({ signal });
    } catch (err) {
      if (!(err instanceof UnavailableError)) throw err;
      this.#setStatus({ state: "disconnected", error: errorText(err) });
      return await this.#client.version({ signal, waitForReady: true });
    }
  }

  /** The safety net against dropped events; ends with the session. */
  async #resyncPeriodically(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        await delay(this.#options.resyncIntervalMs, signal);
        await this.#resync(signal);
      } catch (err) {
        if (!signal.aborted) log.warn("periodic resync failed: {error}", { error: errorText(err) });
      }
    }
  }

  #subscriptionFilters(): string[] {
    const ns = `namespace==${quoteFilterValue(this.namespace)}`;
    return [...WATCHED_TOPICS, MARKER_TOPIC].map((t) => `${ns},topic==${quoteFilterValue(t)}`);
  }

  async #pump(events: AsyncIterable<ContainerdEvent>): Promise<void> {
    for await (const event of events) this.#dispatch(event);
  }

  /**
   * Publishes a marker and resolves once it has been dispatched: the subscription is
   * live and every event published before the marker has been handed to the queue.
   */
  async #marker(signal: AbortSignal): Promise<void> {
    const nonce = crypto.randomUUID();
    let seen = false;
    const arrived = new Promise<void>((resolve) =>
      this.#markers.set(nonce, () => {
        seen = true;
        resolve();
      })
    );
    const done = new AbortController();
    const stop = AbortSignal.any([signal, done.signal]);
    try {
      // A publish can race the subscription's registration in containerd and be lost:
      // publish again, backing off, until one copy comes back.
      const publishing = (async () => {
        const backoff = new Backoff({ initialMs: 25, maxMs: 400, jitter: 0 });
        while (!seen) {
          await this.#client.publish(this.namespace, MARKER_TOPIC, markerPayload(nonce), {
            signal: stop,
          });
          await delay(backoff.next(), stop);
        }
      })();
      publishing.catch(() => {});
      const timedOut = await Promise.race([
        arrived.then(() => false),
        publishing.then(() => false),
        delay(this.#options.markerTimeoutMs, stop).then(() => true),
      ]);
      if (timedOut) {
        log.warn(
          "subscription marker not received within {ms} ms; continuing without the guarantee that no event was missed",
          { ms: this.#options.markerTimeoutMs },
        );
      }
    } finally {
      done.abort();
      this.#markers.delete(nonce);
    }
  }

  // ---- resync -----------------------------------------------------------------------

  /** Steps 2-3 of a session (see the module comment). */
  async #resync(signal: AbortSignal): Promise<void> {
    const seqAtList = this.#eventSeq;
    const [containers, tasks, records] = await Promise.all([
      this.#client.listContainers(this.namespace, this.#filters, { signal }),
      this.#client.listTasks(this.namespace, { signal }),
      this.#store.list({ namespace: this.namespace }),
    ]);
    const taskById = new Map(tasks.map((t) => [t.containerId, t]));
    const recordById = new Map(records.map((r) => [r.id, r]));
    const live = new Map(containers.map((c) => [c.id, c]));
    for (const id of this.#kinds.keys()) if (!live.has(id)) this.#kinds.delete(id);
    for (const id of live.keys()) this.#kinds.set(id, true);

    await Promise.all(
      containers.map((c) =>
        this.#queue.run(c.id, () => this.#applyListed(c, taskById.get(c.id), recordById.get(c.id)))
      ),
    );

    // Only after every earlier event is applied may absence be read as a lost exit.
    await this.#marker(signal);
    const candidates: Array<() => Promise<void>> = [];
    for (const c of containers) {
      const record = recordById.get(c.id);
      if (!taskById.has(c.id) && !record?.exit) {
        candidates.push(() => this.#inferMissingTask(c, seqAtList));
      }
    }
    for (const r of records) {
      if (!live.has(r.id) && (!r.exit || !r.deletedAt)) {
        candidates.push(() => this.#inferRemoved(r.id, seqAtList));
      }
    }
    await Promise.all(candidates.map((job) => job()));
  }

  /** Records what a listing proves about one sandbox container. */
  async #applyListed(
    container: ContainerInfo,
    task: TaskInfo | undefined,
    record: SandboxRecord | undefined,
  ): Promise<void> {
    const key = this.#key(container.id);
    const description = describeContainer(container);
    if (task?.status === "stopped") {
      if (record?.exit) return;
      const exit: ExitDraft = task.exitedAt
        ? {
          status: task.exitStatus,
          exitedAt: task.exitedAt,
          source: "task-status",
          statusKnown: true,
        }
        : this.#unreadableExit("containerd reported the task stopped without an exit time");
      if (this.reap === "always") {
        // Reaping may need retries; it runs as its own job behind this one.
        this.#enqueue(
          container.id,
          "reap stopped task",
          () => this.#exit(key, exit, { ...description, pid: task.pid }),
        );
      } else {
        await this.#commitExit(key, exit, { ...description, pid: task.pid });
      }
    } else if (task) {
      if (record && !record.exit && record.state === "SANDBOX_READY" && record.pid === task.pid) {
        return;
      }
      await this.#store.markRunning(key, task.pid, description);
    } else if (!record) {
      await this.#store.discover(key, description);
    }
  }

  /** A listed sandbox had no task: unless it is starting, its exit was lost. */
  #inferMissingTask(container: ContainerInfo, seqAtList: number): Promise<void> {
    return this.#queue.run(container.id, async () => {
      if ((this.#lastEvent.get(container.id) ?? 0) > seqAtList) return; // newer news arrived
      const key = this.#key(container.id);
      const record = await this.#store.get(key);
      if (!record || record.exit) return;
      const created = container.createdAt ? instantToMillis(container.createdAt) : 0;
      const age = this.#options.now().getTime() - created;
      if (record.state === "SANDBOX_NOTREADY" && age < this.#options.taskGraceMs) return;
      await this.#commitExit(
        key,
        this.#missingExit(
          record.state === "SANDBOX_READY"
            ? "the task was gone before its exit was seen"
            : "the sandbox had no task when the agent first saw it",
        ),
      );
    });
  }

  /** A recorded sandbox's container is gone: mark it, and its exit if never seen. */
  #inferRemoved(id: string, seqAtList: number): Promise<void> {
    return this.#queue.run(id, async () => {
      if ((this.#lastEvent.get(id) ?? 0) > seqAtList) return;
      await this.#removed(this.#key(id), this.#nowText());
    });
  }

  // ---- events -----------------------------------------------------------------------

  #dispatch(event: ContainerdEvent): void {
    if (event.namespace !== this.namespace) return;
    switch (event.kind) {
      case "marker":
        this.#markers.get(event.nonce)?.();
        return;
      case "malformed":
        log.warn("skipped a malformed {topic} event ({typeUrl}): {reason}", { ...event });
        return;
      case "ignored":
        return;
      case "task-exit":
      case "task-delete":
        // Exec processes have their own id; only the init process ends the sandbox.
        if (event.processId !== "" && event.processId !== event.containerId) return;
        break;
    }
    const id = "id" in event ? event.id : event.containerId;
    if (id === "") {
      log.warn("skipped a {topic} event without a container id", { topic: event.topic });
      return;
    }
    this.#lastEvent.set(id, ++this.#eventSeq);
    this.#enqueue(id, event.topic, () => this.#apply(id, event));
  }

  /** Queues a job for one container, retrying it with backoff until it succeeds or we stop. */
  #enqueue(id: string, what: string, job: () => Promise<void>): void {
    this.#queue.run(id, () => this.#retrying(`${what} for ${this.namespace}/${id}`, job))
      .catch((err) => {
        if (!this.#stopping.signal.aborted) {
          log.error("gave up on {what}: {error}", { what, error: errorText(err) });
        }
      });
  }

  async #retrying(what: string, job: () => Promise<void>): Promise<void> {
    const backoff = new Backoff(this.#options.retryBackoff);
    for (;;) {
      try {
        return await job();
      } catch (err) {
        if (this.#stopping.signal.aborted) throw err;
        const ms = backoff.next();
        log.warn("{what} failed (attempt {attempt}), retrying in {ms} ms: {error}", {
          what,
          attempt: backoff.attempts,
          ms,
          error: errorText(err),
        });
        await delay(ms, this.#stopping.signal);
      }
    }
  }

  async #apply(id: string, event: ContainerdEvent): Promise<void> {
    const key = this.#key(id);
    switch (event.kind) {
      case "container-create": {
        this.#kinds.delete(id); // a new container may reuse an id: ask again
        const kind = await this.#classify(id);
        if (kind.sandbox && kind.info) {
          await this.#store.discover(key, describeContainer(kind.info));
        }
        return;
      }
      case "task-create":
      case "task-start": {
        const kind = await this.#classify(id);
        if (!kind.sandbox) return;
        await this.#store.markRunning(key, event.pid, kind.info && describeContainer(kind.info));
        return;
      }
      case "task-exit": {
        const kind = await this.#classify(id);
        if (!kind.sandbox) return;
        const exit = event.exitedAt
          ? {
            status: event.exitStatus,
            exitedAt: event.exitedAt,
            source: "event",
            statusKnown: true,
          } as const
          : this.#unreadableExit("the TaskExit event carried no exit time");
        await this.#exit(key, exit, kind.info && describeContainer(kind.info));
        return;
      }
      case "task-delete": {
        // Someone deleted the task: its exit rides along (a second source, if the
        // TaskExit was missed). Nothing is left to reap.
        if (!event.exitedAt) return;
        const kind = await this.#classify(id);
        if (!kind.sandbox) return;
        await this.#commitExit(key, {
          status: event.exitStatus,
          exitedAt: event.exitedAt,
          source: "event",
          statusKnown: true,
        });
        return;
      }
      case "container-delete": {
        this.#kinds.delete(id);
        this.#lastEvent.delete(id);
        await this.#removed(key, event.timestamp ?? this.#nowText());
        return;
      }
    }
  }

  /** Whether a container is a sandbox (cached); asks containerd with the sandbox filter. */
  async #classify(id: string): Promise<Classification> {
    const known = this.#kinds.get(id);
    if (known !== undefined) return known ? { sandbox: true } : { sandbox: false };
    const found = await this.#client.listContainers(
      this.namespace,
      andFilter(`id==${quoteFilterValue(id)}`, this.#filters),
    );
    const info = found.find((c) => c.id === id);
    this.#kinds.set(id, info !== undefined);
    return info ? { sandbox: true, info } : { sandbox: false };
  }

  // ---- exits ------------------------------------------------------------------------

  /** Exit handling under the reap policy: delete the task first when the agent owns it. */
  async #exit(key: SandboxKey, exit: ExitDraft, description?: SandboxDescription) {
    if (this.reap === "always") {
      const current = await this.#store.get(key);
      if (current?.exit) return;
      await this.#reapTask(key);
    }
    await this.#commitExit(key, exit, description);
  }

  /** The reference controller's handling: load the task, delete it with kill; NotFound is fine. */
  async #reapTask(key: SandboxKey): Promise<void> {
    try {
      await this.#client.getTask(key.namespace, key.id);
    } catch (err) {
      if (err instanceof NotFoundError) return;
      throw err;
    }
    try {
      await this.#client.killTask(key.namespace, key.id, SIGKILL, { all: true });
    } catch (err) {
      // The init process has exited: "not found"/"already finished" are expected.
      if (!(err instanceof NotFoundError || err instanceof FailedPreconditionError)) throw err;
    }
    try {
      await this.#client.deleteTask(key.namespace, key.id);
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  async #commitExit(key: SandboxKey, exit: ExitDraft, description?: SandboxDescription) {
    const result = await this.#store.recordExit(key, exit, description);
    if (result.changed) {
      log.info("sandbox {namespace}/{id} exited with status {status} at {exitedAt} ({source})", {
        namespace: key.namespace,
        id: key.id,
        status: exit.status,
        exitedAt: exit.exitedAt,
        source: exit.source,
        statusKnown: exit.statusKnown,
      });
    } else if (result.record.exit && result.record.exit.status !== exit.status) {
      log.info(
        "ignored a later exit of sandbox {namespace}/{id} with status {status}: {recorded} is recorded",
        { ...key, status: exit.status, recorded: result.record.exit.status },
      );
    }
    this.#waiters.notify(keyOf(key));
  }

  /** The container is gone: record a lost exit if none was seen, keep the record. */
  async #removed(key: SandboxKey, at: string): Promise<void> {
    const record = await this.#store.get(key);
    if (!record) return;
    if (!record.exit) {
      await this.#commitExit(
        key,
        this.#missingExit("the container was removed before its exit was seen"),
      );
    }
    await this.#store.markDeleted(key, at);
  }

  #unreadableExit(reason: string): ExitDraft {
    return {
      status: UNKNOWN_EXIT_STATUS,
      exitedAt: this.#nowText(),
      source: "unreadable",
      statusKnown: false,
      reason,
    };
  }

  #missingExit(reason: string): ExitDraft {
    return {
      status: UNKNOWN_EXIT_STATUS,
      exitedAt: this.#nowText(),
      source: "task-missing",
      statusKnown: false,
      reason,
    };
  }

  // ---- helpers ----------------------------------------------------------------------

  #key(id: string): SandboxKey {
    return { namespace: this.namespace, id };
  }

  #notFound(key: SandboxKey): NotFoundError {
    return new NotFoundError(
      `sandbox ${JSON.stringify(key.id)} not found in namespace ${key.namespace}`,
    );
  }

  #nowText(): string {
    return instantFromDate(this.#options.now());
  }

  #setStatus(next: Omit<ConnectionStatus, "since">): void {
    const previous = this.#status;
    const since = previous.state === next.state ? previous.since : this.#nowText();
    this.#status = { ...next, since };
    if (previous.state === next.state && previous.error === next.error) return;
    if (next.state === "connected") {
      log.info("connected to containerd {version}; following namespace {namespace}", {
        version: next.containerdVersion,
        namespace: this.namespace,
      });
    } else if (previous.state !== next.state) {
      log.warn("containerd unavailable: {error}; retrying", { error: next.error });
    }
    if (next.state !== "connecting") this.#firstOutcome.resolve(this.#status);
  }
}

function keyOf(key: SandboxKey): string {
  return `${key.namespace}/${key.id}`;
}
