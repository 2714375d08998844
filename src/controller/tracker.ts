/**
 * Applies what containerd says — events and listings — to the sandbox records, one
 * sandbox at a time (KeyedQueue) and concurrently across sandboxes, with the exit
 * policy (reap or not), durable retries and waiter notification.
 *
 * @module
 */
import { andFilter, quoteFilterValue } from "../containerd/filters.ts";
import type {
  ContainerdClient,
  ContainerdEvent,
  ContainerInfo,
  TaskInfo,
} from "../containerd/types.ts";
import { FailedPreconditionError, NotFoundError, UnavailableError } from "../errors.ts";
import { validateIdentifier } from "../ids.ts";
import { logger } from "../log.ts";
import type {
  PendingExit,
  SandboxDescription,
  SandboxExit,
  SandboxKey,
  SandboxRecord,
  SandboxStore,
} from "../store/types.ts";
import { UNKNOWN_EXIT_STATUS } from "../store/types.ts";
import { instantFromDate } from "../time.ts";
import type { ExitTraceHooks, TracedSource } from "../trace/exit_trace.ts";
import { Backoff, type BackoffOptions, delay } from "./backoff.ts";
import { describeContainer } from "./describe.ts";
import { KeyedQueue } from "./keyed_queue.ts";
import type { ExitWaiters } from "./waiters.ts";

/**
 * What the agent does with a sandbox's task when its init process exits:
 * - "never": record the exit only (the sandbox's owner, e.g. containerd's CRI, deletes
 *   the task; a second deleter races it and leaks shims, containerd#12344);
 * - "always": like containerd's pod-sandbox controller, delete the task (with kill),
 *   then record the exit; waiters wake after the delete.
 */
export type ReapPolicy = "never" | "always";
export const REAP_POLICIES: readonly ReapPolicy[] = ["never", "always"];

/** Exit details before the store stamps recordedAt. */
export type ExitDraft = Omit<SandboxExit, "recordedAt">;

/** containerd's state of one namespace at one moment. */
export interface Listing {
  containers: ContainerInfo[];
  tasks: Map<string, TaskInfo>;
  records: Map<string, SandboxRecord>;
  /** Event sequence number when the listing started: later events are newer news. */
  seq: number;
}

/** Hooks for metrics; every method is optional. */
export interface ControllerObserver {
  /** An exit was committed; `seconds` from receiving its event, when it came from one. */
  exitRecorded?(source: SandboxExit["source"], seconds?: number): void;
  /** A session synced with containerd (first connect or reconnect). */
  connected?(): void;
  /** A listing was reconciled with the store. */
  resynced?(): void;
  /** An event was skipped as unusable. */
  eventSkipped?(reason: SkipReason): void;
}

/** Why an event from containerd was skipped. */
export type SkipReason = "unknown-type" | "malformed" | "bad-id";

/** Where the tracker starts and ends the waits on sandboxes' shims (see shim_watch.ts). */
export interface ShimWatches {
  watch(id: string): void;
  unwatch(id: string): void;
}

export interface TrackerOptions {
  observer?: ControllerObserver;
  /** Waits on shims for the exits of running sandboxes; off when absent. */
  shims?: ShimWatches;
  /** Per-exit timestamps (PODSANDBOXD_EXIT_TRACE); off when absent. */
  trace?: ExitTraceHooks;
  namespace: string;
  filters: string[];
  reap: ReapPolicy;
  retryBackoff: BackoffOptions;
  now: () => Date;
}

type Classification = { sandbox: false } | { sandbox: true; info?: ContainerInfo };

const SIGKILL = 9;
const log = logger("controller");

/** The exit sources the exit trace follows (the others come from listings). */
function tracedSource(source: SandboxExit["source"]): TracedSource | undefined {
  return source === "event" || source === "shim" ? source : undefined;
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Key of a sandbox in the waiter registry. */
export function waiterKey(key: SandboxKey): string {
  return `${key.namespace}/${key.id}`;
}

export class SandboxTracker {
  readonly #client: ContainerdClient;
  readonly #store: SandboxStore;
  readonly #waiters: ExitWaiters<SandboxRecord>;
  readonly #options: TrackerOptions;
  readonly #queue = new KeyedQueue();
  /** Container id → whether it is a sandbox; rebuilt on every listing. */
  readonly #kinds = new Map<string, boolean>();
  /** Container id → sequence number of the last event dispatched for it. */
  readonly #lastEvent = new Map<string, number>();
  #seq = 0;
  /** Container id → the last error of its job, while that job waits to be retried. */
  readonly #backingOff = new Map<string, string>();
  readonly #skipsLogged = new Set<SkipReason>();
  /** Aborted by close(): ends retries. */
  readonly #stopping = new AbortController();
  /** Aborted (and replaced) by retryNow(): wakes every job waiting to be retried. */
  #wake = new AbortController();
  /** Ids of the sandboxes this agent owns (see own). */
  readonly #owned = new Set<string>();

  constructor(
    client: ContainerdClient,
    store: SandboxStore,
    waiters: ExitWaiters<SandboxRecord>,
    options: TrackerOptions,
  ) {
    this.#client = client;
    this.#store = store;
    this.#waiters = waiters;
    this.#options = options;
  }

  get namespace(): string {
    return this.#options.namespace;
  }

  /** Jobs that failed and wait for their next attempt. */
  get retrying(): number {
    return this.#backingOff.size;
  }

  /** Sandboxes with jobs queued or running. */
  busyIds(): string[] {
    return this.#queue.keys();
  }

  /** Events dispatched so far (a counter: equal values mean none arrived in between). */
  get dispatched(): number {
    return this.#seq;
  }

  /** Resolves when every job queued so far has settled. */
  settled(): Promise<void> {
    return this.#queue.drain();
  }

  /**
   * Retries every failed job now instead of at the end of its backoff: containerd is
   * reachable again, and a job waiting minutes would hold its sandbox's later work.
   */
  retryNow(): void {
    const wake = this.#wake;
    this.#wake = new AbortController();
    wake.abort();
  }

  /**
   * Marks a sandbox as owned by this agent (its sandbox controller): its exits are
   * handled like the reference controller's — task deleted with kill, then recorded —
   * whatever the reap policy.
   */
  own(id: string): void {
    this.#owned.add(id);
  }

  disown(id: string): void {
    this.#owned.delete(id);
  }

  /** Whether the agent deletes this sandbox's task on exit. */
  #reaps(id: string): boolean {
    return this.#options.reap === "always" || this.#owned.has(id);
  }

  /** Ends retries; queued jobs still run once, failures are not retried. */
  close(reason: unknown): void {
    this.#stopping.abort(reason);
  }

  // ---- events -----------------------------------------------------------------------

  /** Hands one event of this namespace to its sandbox's queue. */
  dispatch(event: ContainerdEvent): void {
    switch (event.kind) {
      case "marker":
        return;
      case "ignored":
        // The subscription asks only for topics podsandboxd handles: another type is odd.
        this.#skip("unknown-type", event, `unexpected event type ${JSON.stringify(event.typeUrl)}`);
        return;
      case "malformed":
        this.#skip("malformed", event, `undecodable ${event.typeUrl}: ${event.reason}`);
        return;
      case "task-exit":
      case "task-delete":
        // Exec processes have their own id; only the init process ends the sandbox.
        if (event.processId !== "" && event.processId !== event.containerId) return;
        break;
    }
    const id = "id" in event ? event.id : event.containerId;
    try {
      validateIdentifier("container id", id);
    } catch (err) {
      this.#skip("bad-id", event, errorText(err));
      return;
    }
    this.#lastEvent.set(id, ++this.#seq);
    const received = performance.now();
    if (event.kind === "task-exit") {
      this.#options.trace?.stage(`${this.namespace}/${id}`, "event", "dispatched");
    }
    this.#enqueue(id, event.topic, () => this.#apply(id, event, received));
  }

  async #apply(id: string, event: ContainerdEvent, received: number): Promise<void> {
    const key = this.#key(id);
    if (event.kind === "task-exit") this.#options.trace?.stage(waiterKey(key), "event", "job");
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
        await this.#running(key, event.pid, kind.info && describeContainer(kind.info));
        return;
      }
      case "task-exit": {
        const kind = await this.#classify(id);
        if (!kind.sandbox) return;
        const exit = this.#exitOf(
          event.exitStatus,
          event.exitedAt,
          "event",
          "containerd's TaskExit carried no usable exit time; exitedAt is when the agent received it",
        );
        await this.#exit(key, exit, kind.info && describeContainer(kind.info), received);
        return;
      }
      case "task-delete": {
        // Someone deleted the task: its exit rides along (a second source, if the
        // TaskExit was missed). Nothing is left to reap.
        if (!event.exitedAt) return;
        const kind = await this.#classify(id);
        if (!kind.sandbox) return;
        const exit = this.#exitOf(event.exitStatus, event.exitedAt, "event", "");
        await this.#commitExit(key, exit, kind.info && describeContainer(kind.info), received);
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

  /**
   * Whether a container is a sandbox (cached); asks containerd with the sandbox filter.
   * A container already gone (event lag) has no labels left to tell: a record of it is
   * the proof it was a sandbox. Without a record, it cannot be known and is not one.
   */
  async #classify(id: string): Promise<Classification> {
    const known = this.#kinds.get(id);
    if (known !== undefined) return known ? { sandbox: true } : { sandbox: false };
    const idFilter = `id==${quoteFilterValue(id)}`;
    const found = await this.#client.listContainers(
      this.namespace,
      andFilter(idFilter, this.#options.filters),
    );
    const info = found.find((c) => c.id === id);
    if (info) {
      this.#kinds.set(id, true);
      return { sandbox: true, info };
    }
    let sandbox = false;
    if (await this.#store.get(this.#key(id))) {
      // Present but not selected: a container of another kind now has this id.
      const present = await this.#client.listContainers(this.namespace, [idFilter], {
        sandboxers: false,
      });
      sandbox = !present.some((c) => c.id === id);
    }
    this.#kinds.set(id, sandbox);
    return { sandbox };
  }

  /**
   * containerd's answer about a sandbox the store has no record of (a query that came
   * before its events were applied, or while the agent started): records what containerd
   * shows, in order with the sandbox's events, and returns the record — null when
   * containerd has no such sandbox. Throws UnavailableError while the sandbox's own
   * handling is failing and waits to be retried.
   */
  lookup(id: string, options: { signal?: AbortSignal } = {}): Promise<SandboxRecord | null> {
    const failing = this.#backingOff.get(id);
    if (failing !== undefined) {
      return Promise.reject(
        new UnavailableError(
          `the agent's handling of sandbox ${this.namespace}/${id} is failing and waits to be retried: ${failing}`,
        ),
      );
    }
    const key = this.#key(id);
    return this.#queue.run(id, async () => {
      const known = await this.#store.get(key);
      if (known) return known;
      const { signal } = options;
      const found = await this.#client.listContainers(
        this.namespace,
        andFilter(`id==${quoteFilterValue(id)}`, this.#options.filters),
        { signal },
      );
      const info = found.find((c) => c.id === id);
      if (!info) return null;
      this.#kinds.set(id, true);
      const task = await this.#client.getTask(this.namespace, id, { signal }).catch((err) => {
        if (err instanceof NotFoundError) return undefined;
        throw err;
      });
      await this.#applyListed(info, task, undefined);
      return await this.#store.get(key);
    });
  }

  // ---- shims ------------------------------------------------------------------------

  /**
   * The shim answered a sandbox's exit: handled like a TaskExit, in order with the
   * sandbox's events. What containerd said (a listing, an event) or a record is proof
   * enough that it is a sandbox — containerd may be down (that is when the shim matters
   * most); otherwise containerd is asked.
   */
  shimExit(id: string, exit: { exitStatus: number; exitedAt?: string }): void {
    this.#lastEvent.set(id, ++this.#seq);
    const received = performance.now();
    const key = this.#key(id);
    const trace = this.#options.trace;
    if (trace) {
      trace.stage(waiterKey(key), "shim", "received");
      trace.stage(waiterKey(key), "shim", "dispatched");
    }
    this.#enqueue(id, "exit from the shim", async () => {
      trace?.stage(waiterKey(key), "shim", "job");
      // containerd said it is a sandbox: the commit itself tells whether an exit is
      // recorded already (then it changes nothing), as for a TaskExit — no read first.
      const known = this.#kinds.get(id) === true;
      const record = known ? undefined : await this.#store.get(key);
      if (record?.exit) return;
      const description = known || record ? undefined : await this.#classify(id).then((kind) => {
        if (!kind.sandbox) return null;
        return kind.info ? describeContainer(kind.info) : undefined;
      });
      if (description === null) return;
      const draft = this.#exitOf(
        exit.exitStatus,
        exit.exitedAt,
        "shim",
        "the shim gave no usable exit time; exitedAt is when the agent received it",
      );
      await this.#exit(key, draft, description, received);
    });
  }

  /**
   * Waits on the shims of the sandboxes the store has as running — also while containerd
   * is down; how many, and the ids the store knows (for watchUnknown).
   */
  async watchLive(): Promise<{ watched: number; known: Set<string> }> {
    const shims = this.#options.shims;
    const records = await this.#store.list({ namespace: this.namespace });
    let watched = 0;
    for (const r of records) {
      if (shims && r.state === "SANDBOX_READY" && !r.exit) {
        shims.watch(r.id);
        watched++;
      }
    }
    return { watched, known: new Set(records.map((r) => r.id)) };
  }

  /**
   * Waits on the shims of `ids` (found in containerd's state directory) the store does not
   * know; whether those are sandboxes is settled once containerd answers. How many.
   */
  watchUnknown(ids: string[], known: Set<string>): number {
    let watched = 0;
    for (const id of ids) {
      if (!known.has(id)) {
        this.#options.shims?.watch(id);
        watched++;
      }
    }
    return watched;
  }

  // ---- listings ---------------------------------------------------------------------

  /** Lists sandbox containers, tasks and records of the namespace. */
  async list(signal: AbortSignal): Promise<Listing> {
    const seq = this.#seq;
    const [containers, tasks, records] = await Promise.all([
      this.#client.listContainers(this.namespace, this.#options.filters, { signal }),
      this.#client.listTasks(this.namespace, { signal }),
      this.#store.list({ namespace: this.namespace }),
    ]);
    return {
      containers,
      tasks: new Map(tasks.map((t) => [t.containerId, t])),
      records: new Map(records.map((r) => [r.id, r])),
      seq,
    };
  }

  /**
   * Records what a listing proves: running tasks, STOPPED tasks' exits, new containers.
   * A sandbox whose own job waits to be retried is left to that job: queued behind it,
   * the listing would wait out its backoff.
   */
  async applyListing(listing: Listing): Promise<void> {
    const live = new Set(listing.containers.map((c) => c.id));
    // Shims watched on a guess (found in the state directory) that are not sandboxes'.
    for (const t of listing.tasks.keys()) {
      if (!live.has(t) && !listing.records.has(t)) this.#options.shims?.unwatch(t);
    }
    for (const id of this.#kinds.keys()) if (!live.has(id)) this.#kinds.delete(id);
    for (const id of live) this.#kinds.set(id, true);
    await Promise.all(
      listing.containers.filter((c) => this.#ready(c.id)).map((c) =>
        this.#queue.run(
          c.id,
          () => this.#applyListed(c, listing.tasks.get(c.id), listing.records.get(c.id)),
        )
      ),
    );
    this.#options.observer?.resynced?.();
  }

  /** False (and logged) while the sandbox's job waits to be retried. */
  #ready(id: string): boolean {
    const failing = this.#backingOff.get(id);
    if (failing === undefined) return true;
    log.debug("resync skips sandbox {namespace}/{id}: its handling waits to be retried ({error})", {
      namespace: this.namespace,
      id,
      error: failing,
    });
    return false;
  }

  async #applyListed(
    container: ContainerInfo,
    task: TaskInfo | undefined,
    record: SandboxRecord | undefined,
  ): Promise<void> {
    const key = this.#key(container.id);
    const description = describeContainer(container);
    if (task?.status === "stopped") {
      if (record?.exit) return;
      const exit = this.#exitOf(
        task.exitStatus,
        task.exitedAt,
        "task-status",
        "containerd reported the task stopped without an exit time",
      );
      const described = { ...description, pid: task.pid };
      if (this.#reaps(container.id)) {
        // Reaping may need retries; it runs as its own job behind this one.
        this.#enqueue(container.id, "reap stopped task", () => this.#exit(key, exit, described));
      } else {
        await this.#commitExit(key, exit, described);
      }
    } else if (task) {
      if (record && !record.exit && record.state === "SANDBOX_READY" && record.pid === task.pid) {
        this.#options.shims?.watch(container.id);
        return;
      }
      await this.#running(key, task.pid, description);
    } else if (!record) {
      await this.#store.discover(key, description);
    }
  }

  /**
   * Reads absence as a lost exit: sandboxes whose task is gone and records whose
   * container is gone. Call only once every event published before the listing has been
   * dispatched, or a real exit still in flight would be pre-empted.
   */
  async inferAbsences(listing: Listing): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const c of listing.containers) {
      if (!listing.tasks.has(c.id) && !listing.records.get(c.id)?.exit && this.#ready(c.id)) {
        jobs.push(this.#queue.run(c.id, () => this.#inferMissingTask(c, listing.seq)));
      }
    }
    const live = new Set(listing.containers.map((c) => c.id));
    for (const r of listing.records.values()) {
      if (!live.has(r.id) && (!r.exit || !r.deletedAt) && this.#ready(r.id)) {
        jobs.push(this.#queue.run(r.id, async () => {
          if ((this.#lastEvent.get(r.id) ?? 0) > listing.seq) return; // newer news arrived
          await this.#removed(this.#key(r.id), this.#nowText());
        }));
      }
    }
    await Promise.all(jobs);
  }

  /**
   * A sandbox listed without a task: an exit is inferred only for one that had a task
   * (its record has a pid). One that never had one may still get it — containerd's CRI
   * runs CNI between creating the container and its task — so while the container
   * exists it has no exit; its removal records the lost one.
   */
  async #inferMissingTask(container: ContainerInfo, seq: number): Promise<void> {
    if ((this.#lastEvent.get(container.id) ?? 0) > seq) return; // newer news arrived
    const key = this.#key(container.id);
    const record = await this.#store.get(key);
    if (!record || record.exit || !record.pid) return;
    await this.#commitExit(
      key,
      this.#unknownExit("task-missing", "the task was gone before its exit was seen"),
      describeContainer(container),
    );
  }

  // ---- exits ------------------------------------------------------------------------

  /**
   * Picks up exits whose handling was interrupted (agent restart): they are retried
   * before anything else of their sandbox.
   */
  async restorePending(): Promise<number> {
    const pending = await this.#store.listPendingExits({ namespace: this.namespace });
    for (const p of pending) {
      log.info("resuming the handling of sandbox {namespace}/{id}'s exit (attempt {attempt})", {
        ...p.key,
        attempt: p.attempts + 1,
      });
      this.#enqueue(p.key.id, "pending exit", () => this.#exit(p.key, p.exit, p.description), p);
    }
    return pending.length;
  }

  /** Exit handling under the reap policy: delete the task first when the agent owns it. */
  async #exit(
    key: SandboxKey,
    exit: ExitDraft,
    description?: SandboxDescription,
    received?: number,
  ) {
    if (this.#reaps(key.id)) {
      const current = await this.#store.get(key);
      if (current?.exit) return;
      // Durable before acting: a restart resumes this exit where it stopped.
      await this.#store.savePendingExit(key, exit, description);
      try {
        await this.#reapTask(key);
      } catch (err) {
        await this.#store.notePendingFailure(key, errorText(err)).catch(() => {});
        throw err;
      }
    }
    await this.#commitExit(key, exit, description, received);
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

  /** Records the sandbox READY and, while it runs, waits on its shim for its exit. */
  async #running(key: SandboxKey, pid: number, description?: SandboxDescription): Promise<void> {
    const { record } = await this.#store.markRunning(key, pid, description);
    if (record.state === "SANDBOX_READY" && !record.exit) this.#options.shims?.watch(key.id);
  }

  /** Records the exit (clearing any pending one in the same commit) and wakes waiters. */
  async #commitExit(
    key: SandboxKey,
    exit: ExitDraft,
    description?: SandboxDescription,
    received?: number,
  ) {
    const wkey = waiterKey(key);
    const source = this.#options.trace && tracedSource(exit.source);
    const trace = source ? this.#options.trace : undefined;
    trace?.stage(wkey, source!, "commit");
    const result = await this.#store.recordExit(key, exit, description);
    if (trace) {
      if (result.changed) trace.recorded(wkey, source!);
      else trace.stage(wkey, source!, "committed");
    }
    if (result.changed) {
      this.#options.observer?.exitRecorded?.(
        exit.source,
        received === undefined ? undefined : (performance.now() - received) / 1000,
      );
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
    if (result.record.exit) this.#options.shims?.unwatch(key.id);
    // Waiters get the record as committed: no re-read for each of them.
    this.#waiters.notify(wkey, result.record);
    trace?.notified(wkey);
  }

  /** The container is gone: record a lost exit if none was seen, keep the record. */
  async #removed(key: SandboxKey, at: string): Promise<void> {
    this.#options.shims?.unwatch(key.id);
    const record = await this.#store.get(key);
    if (!record) return;
    if (!record.exit) {
      await this.#commitExit(
        key,
        this.#unknownExit("task-missing", "the container was removed before its exit was seen"),
      );
    }
    await this.#store.markDeleted(key, at);
  }

  /**
   * An exit containerd told about. Without a usable time its status still stands; the
   * time is when the agent learned of it, marked as such (`reason` says why).
   */
  #exitOf(
    status: number,
    exitedAt: string | undefined,
    source: "event" | "task-status" | "shim",
    reason: string,
  ): ExitDraft {
    return exitedAt ? { status, exitedAt, source, statusKnown: true } : {
      status,
      exitedAt: this.#nowText(),
      source,
      statusKnown: true,
      exitedAtKnown: false,
      reason,
    };
  }

  #unknownExit(source: "task-missing", reason: string): ExitDraft {
    return {
      status: UNKNOWN_EXIT_STATUS,
      exitedAt: this.#nowText(),
      exitedAtKnown: false,
      source,
      statusKnown: false,
      reason,
    };
  }

  // ---- jobs -------------------------------------------------------------------------

  /** Queues a job for one container, retrying it with backoff until it succeeds or we stop. */
  #enqueue(id: string, what: string, job: () => Promise<void>, pending?: PendingExit): void {
    this.#queue.run(
      id,
      () => this.#retrying(id, `${what} for ${this.namespace}/${id}`, job, pending),
    )
      .catch((err) => {
        if (!this.#stopping.signal.aborted) {
          log.error("gave up on {what}: {error}", { what, error: errorText(err) });
        }
      });
  }

  async #retrying(
    id: string,
    what: string,
    job: () => Promise<void>,
    pending?: PendingExit,
  ): Promise<void> {
    const backoff = new Backoff(this.#options.retryBackoff);
    // A resumed exit continues its backoff where the previous run left it.
    for (let i = 0; i < Math.min(pending?.attempts ?? 0, 32); i++) backoff.next();
    try {
      for (;;) {
        try {
          return await job();
        } catch (err) {
          if (this.#stopping.signal.aborted) throw err;
          this.#backingOff.set(id, errorText(err));
          const ms = backoff.next();
          log.warn("{what} failed (attempt {attempt}), retrying in {ms} ms: {error}", {
            what,
            attempt: backoff.attempts,
            ms,
            error: errorText(err),
          });
          try {
            await delay(ms, AbortSignal.any([this.#stopping.signal, this.#wake.signal]));
          } catch (woken) {
            if (this.#stopping.signal.aborted) throw woken;
            // retryNow(): try again at once.
          }
        }
      }
    } finally {
      this.#backingOff.delete(id);
    }
  }

  /**
   * Skips an event podsandboxd cannot use: counted always, logged once per reason (with
   * its context) so a flood of bad input cannot flood the log.
   */
  #skip(reason: SkipReason, event: ContainerdEvent, detail: string): void {
    this.#options.observer?.eventSkipped?.(reason);
    if (this.#skipsLogged.has(reason)) return;
    this.#skipsLogged.add(reason);
    log.warn(
      "skipped a {topic} event in {namespace}: {detail} (further {reason} events are only counted)",
      {
        topic: event.topic.slice(0, 200),
        namespace: event.namespace,
        detail: detail.slice(0, 500),
        reason,
      },
    );
  }

  #key(id: string): SandboxKey {
    return { namespace: this.namespace, id };
  }

  #nowText(): string {
    return instantFromDate(this.#options.now());
  }
}
