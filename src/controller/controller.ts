/**
 * The pod-sandbox controller: follows containerd's sandboxes of one namespace (sessions,
 * see session.ts), keeps their records (tracker.ts), and answers wait/status from the
 * store.
 *
 * @module
 */
import type { ContainerdClient } from "../containerd/types.ts";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  StatusError,
  UnavailableError,
  UnimplementedError,
} from "../errors.ts";
import { logger } from "../log.ts";
import { nodePlatform, type Platform } from "../platform.ts";
import type {
  ListFilter,
  SandboxExit,
  SandboxKey,
  SandboxRecord,
  SandboxStore,
} from "../store/types.ts";
import { instantFromDate } from "../time.ts";
import {
  Backoff,
  type BackoffOptions,
  delay,
  EXIT_RETRY_BACKOFF,
  RECONNECT_BACKOFF,
} from "./backoff.ts";
import { type Change, ChangeFeed } from "./changes.ts";
import { type Flush, pollSession, type SessionContext, streamSession } from "./session.ts";
import { ObservedStore, type StoreChange } from "../store/observed_store.ts";
import {
  type ControllerObserver,
  errorText,
  type ReapPolicy,
  SandboxTracker,
  waiterKey,
} from "./tracker.ts";
import { ExitWaiters } from "./waiters.ts";
import {
  type CreateRequest,
  OwnedSandboxes,
  type SandboxRuntime,
  type StartedSandbox,
} from "./owned.ts";
import type { OwnedSandbox } from "../store/owned.ts";
import type { ShimDialer, ShimLocator } from "../shim/mod.ts";
import { ShimWatcher } from "./shim_watch.ts";
import type { ExitTraceHooks } from "../trace/exit_trace.ts";

export { REAP_POLICIES } from "./tracker.ts";
export type { ControllerObserver, ReapPolicy } from "./tracker.ts";
export type { CreateRequest, SandboxRuntime, StartedSandbox } from "./owned.ts";

/** How exits are learned: containerd's event stream, or listing tasks periodically. */
export type EventSource = "stream" | "poll";
export const EVENT_SOURCES: readonly EventSource[] = ["stream", "poll"];

/** @default 60_000 */
export const DEFAULT_RESYNC_INTERVAL_MS = 60_000;
/** How long records of removed sandboxes are kept. @default 24 h */
export const DEFAULT_RETENTION_MS = 24 * 3_600_000;
/** @default 1_000 */
export const DEFAULT_POLL_INTERVAL_MS = 1_000;
/** A marker slower than this is logged (inference still waits for it). @default 2_000 */
export const DEFAULT_MARKER_TIMEOUT_MS = 2_000;
/** A marker not back after this ends the session: resubscribe. @default 30_000 */
export const DEFAULT_MARKER_GIVE_UP_MS = 30_000;
/** At shutdown, how long exits already received may take to be committed. @default 2_000 */
export const DEFAULT_SHUTDOWN_DRAIN_MS = 2_000;
/** At shutdown, events stop being applied once none arrived for this long. */
const SHUTDOWN_QUIET_MS = 150;

export interface ControllerOptions {
  /** containerd namespace whose sandboxes are followed. */
  namespace: string;
  /** containerd filters selecting sandbox containers (OR'ed, like containerd's). */
  filters: string[];
  reap: ReapPolicy;
  /** @default "stream" */
  events?: EventSource;
  /** Periodic resync of a stream session; 0 disables it. @default DEFAULT_RESYNC_INTERVAL_MS */
  resyncIntervalMs?: number;
  /** Listing interval of a poll session. @default DEFAULT_POLL_INTERVAL_MS */
  pollIntervalMs?: number;
  /** @default EXIT_RETRY_BACKOFF */
  retryBackoff?: BackoffOptions;
  /** @default RECONNECT_BACKOFF */
  reconnectBackoff?: BackoffOptions;
  /** @default DEFAULT_MARKER_TIMEOUT_MS */
  markerTimeoutMs?: number;
  /** @default DEFAULT_MARKER_GIVE_UP_MS */
  markerGiveUpMs?: number;
  /** @default () => new Date() */
  now?: () => Date;
  /** Metrics hooks. */
  observer?: ControllerObserver;
  /** Records of removed sandboxes expire after this; 0 keeps them. @default DEFAULT_RETENTION_MS */
  retentionMs?: number;
  /** Concurrent waiters beyond which `wait` fails RESOURCE_EXHAUSTED. @default DEFAULT_MAX_WAITERS */
  maxWaiters?: number;
  /**
   * Be containerd's sandbox controller for requests carrying this sandboxer name, running
   * sandboxes through `runtime`. Off (observer only) when absent.
   */
  sandboxer?: { name: string; runtime: SandboxRuntime };
  /**
   * Wait on each running sandbox's shim for its exit (true status and time through
   * containerd outages). Off when absent.
   */
  shims?: { locator: ShimLocator; dial: ShimDialer };
  /** Per-exit timestamps (PODSANDBOXD_EXIT_TRACE). Off when absent. */
  trace?: ExitTraceHooks;
}

/** @default 65_536 */
export const DEFAULT_MAX_WAITERS = 65_536;
/** Concurrent Watch streams beyond which `watch` fails RESOURCE_EXHAUSTED. */
export const MAX_WATCHERS = 1_024;

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

const log = logger("controller");

export class Controller {
  readonly namespace: string;
  readonly reap: ReapPolicy;
  readonly events: EventSource;
  readonly #store: ObservedStore;
  readonly #tracker: SandboxTracker;
  readonly #waiters = new ExitWaiters<SandboxRecord>();
  readonly #session: SessionContext;
  readonly #reconnectBackoff: BackoffOptions;
  readonly #now: () => Date;
  #status: ConnectionStatus;
  readonly #firstOutcome = Promise.withResolvers<ConnectionStatus>();
  readonly #feed = new ChangeFeed();
  readonly #statusListeners = new Set<(status: ConnectionStatus) => void>();
  readonly #retentionMs: number;
  readonly #closing = new AbortController();
  /** Aborted by shutdown(): ends the sessions once received events are flushed. */
  readonly #stopSessions = new AbortController();
  readonly #maxWaiters: number;
  /** Applies every event containerd published so far; set while a stream session is live. */
  #flush?: Flush;
  readonly #owned?: OwnedSandboxes;
  readonly #shims?: ShimWatcher;
  readonly #shimLocator?: ShimLocator;

  constructor(client: ContainerdClient, store: SandboxStore, options: ControllerOptions) {
    // Every committed change reaches watchers, whoever wrote it.
    this.#store = new ObservedStore(store, (change) => this.#changed(change));
    this.#retentionMs = options.retentionMs ?? DEFAULT_RETENTION_MS;
    this.#maxWaiters = options.maxWaiters ?? DEFAULT_MAX_WAITERS;
    this.namespace = options.namespace;
    this.reap = options.reap;
    this.events = options.events ?? "stream";
    this.#now = options.now ?? (() => new Date());
    this.#reconnectBackoff = options.reconnectBackoff ?? RECONNECT_BACKOFF;
    if (options.shims) {
      this.#shimLocator = options.shims.locator;
      this.#shims = new ShimWatcher({
        namespace: options.namespace,
        locator: options.shims.locator,
        dial: options.shims.dial,
        onExit: (id, exit) => this.#tracker.shimExit(id, exit),
        // Shims are found and dialled once the first sync is done (or failed): the
        // agent's socket, opened then, does not wait behind thousands of them.
        startAfter: this.#firstOutcome.promise,
        onLost: (id, reason) =>
          log.info(
            "stopped waiting on the shim of {namespace}/{id}: {reason}; its exit is learned " +
              "from containerd instead",
            { namespace: options.namespace, id, reason },
          ),
      });
    }
    this.#tracker = new SandboxTracker(client, this.#store, this.#waiters, {
      shims: this.#shims,
      namespace: options.namespace,
      filters: options.filters,
      reap: options.reap,
      retryBackoff: options.retryBackoff ?? EXIT_RETRY_BACKOFF,
      now: this.#now,
      observer: options.observer,
      trace: options.trace,
    });
    if (options.sandboxer) {
      this.#owned = new OwnedSandboxes({
        sandboxer: options.sandboxer.name,
        runtime: options.sandboxer.runtime,
        client,
        store: this.#store,
        tracker: this.#tracker,
        waitForExit: (key, signal) => this.wait(key, { signal }),
        releaseWaiters: (key, reason) => this.#waiters.fail(waiterKey(key), reason),
        now: () => this.#nowText(),
      });
    }
    this.#session = {
      client,
      tracker: this.#tracker,
      namespace: options.namespace,
      markerTimeoutMs: options.markerTimeoutMs ?? DEFAULT_MARKER_TIMEOUT_MS,
      markerGiveUpMs: options.markerGiveUpMs ?? DEFAULT_MARKER_GIVE_UP_MS,
      resyncIntervalMs: options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS,
      pollIntervalMs: options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS,
      onConnected: (version, flush) => {
        this.#flush = flush;
        options.observer?.connected?.();
        this.#setStatus({ state: "connected", containerdVersion: version });
      },
      onUnreachable: (error) => this.#setStatus({ state: "disconnected", error }),
    };
    this.#status = { state: "connecting", since: this.#nowText() };
  }

  // ---- queries ----------------------------------------------------------------------

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

  /** Sandboxes whose shim is waited on now. */
  get shimWaitCount(): number {
    return this.#shims?.size ?? 0;
  }

  /** Shim connections open now. */
  get shimConnectionCount(): number {
    return this.#shims?.connections ?? 0;
  }

  /** Sandbox jobs (e.g. a task delete) that failed and wait for their next attempt. */
  get retryingCount(): number {
    return this.#tracker.retrying;
  }

  platform(): Platform {
    return nodePlatform();
  }

  /**
   * The record of a sandbox. A sandbox the store has no record of yet is looked up in
   * containerd (NotFoundError only when containerd has none; UnavailableError when it
   * cannot be asked). A record of a namespace the agent does not follow answers only
   * with its exit (else FailedPreconditionError): nothing keeps it current.
   */
  async get(key: SandboxKey, options: { signal?: AbortSignal } = {}): Promise<SandboxRecord> {
    const record = await this.#find(key, options.signal);
    if (!record.exit) this.#requireFollowed(key, record);
    return record;
  }

  /** Records; those of namespaces the agent does not follow only when they have an exit. */
  async list(filter: ListFilter = {}): Promise<SandboxRecord[]> {
    const records = await this.#store.list(filter);
    return records.filter((r) => r.namespace === this.namespace || r.exit);
  }

  /** The stored record, else containerd's answer (see get). */
  async #find(key: SandboxKey, signal?: AbortSignal): Promise<SandboxRecord> {
    const stored = await this.#store.get(key);
    if (stored) return stored;
    // Created through this agent but not started: known, not running, nothing to ask.
    const owned = await this.#owned?.find(key);
    if (owned) return notStarted(owned);
    if (key.namespace !== this.namespace) {
      throw new NotFoundError(
        `sandbox ${JSON.stringify(key.id)} not found in namespace ${key.namespace} ` +
          `(podsandboxd follows namespace ${this.namespace})`,
      );
    }
    if (this.#status.state !== "connected") {
      throw new UnavailableError(
        `sandbox ${JSON.stringify(key.id)} is not in podsandboxd's records, and containerd ` +
          `cannot be asked: not connected since ${this.#status.since}` +
          (this.#status.error ? ` (${this.#status.error})` : ""),
      );
    }
    let found: SandboxRecord | null;
    try {
      found = await this.#tracker.lookup(key.id, { signal });
    } catch (err) {
      if (signal?.aborted || err instanceof UnavailableError || !(err instanceof StatusError)) {
        throw err;
      }
      throw new UnavailableError(
        `sandbox ${JSON.stringify(key.id)} is not in podsandboxd's records, and asking ` +
          `containerd failed: ${errorText(err)}`,
        { cause: err },
      );
    }
    if (!found) throw notFound(key);
    return found;
  }

  /** FailedPreconditionError for a record of a namespace the agent does not follow. */
  #requireFollowed(key: SandboxKey, record?: SandboxRecord): void {
    if (key.namespace === this.namespace) return;
    throw new FailedPreconditionError(
      `podsandboxd follows namespace ${this.namespace}, not ${key.namespace}: ` +
        (record
          ? `the record of sandbox ${JSON.stringify(key.id)} (last updated ${record.updatedAt}) ` +
            "has no exit and nothing keeps it current. "
          : "") +
        `Ask an agent that follows ${key.namespace} (serve --namespace ${key.namespace})`,
    );
  }

  /** Watchers connected now. */
  get watcherCount(): number {
    return this.#feed.size;
  }

  /**
   * Record changes of `namespace` from now on — after the current records when
   * `snapshot` — until `signal` aborts. Throws ResourceExhaustedError when the consumer
   * falls too far behind.
   */
  async *watch(
    options: { namespace: string; snapshot?: boolean; signal?: AbortSignal },
  ): AsyncGenerator<Change & { snapshot: boolean }, void, undefined> {
    this.#requireFollowed({ namespace: options.namespace, id: "" });
    if (this.#feed.size >= MAX_WATCHERS) {
      throw new ResourceExhaustedError(`too many concurrent watchers (${MAX_WATCHERS})`);
    }
    // Ending this generator any way (even by a failing snapshot) must end the subscription.
    const ended = new AbortController();
    const signals = [ended.signal, this.#closing.signal];
    if (options.signal) signals.push(options.signal);
    // Subscribe before the snapshot: a change made meanwhile is sent (again) after it.
    const changes = this.#feed.subscribe({ signal: AbortSignal.any(signals) });
    const first = changes.next(); // starts the subscription now
    try {
      if (options.snapshot) {
        for (const record of await this.#store.list({ namespace: options.namespace })) {
          yield { record, snapshot: true };
        }
      }
      for (let next = await first; !next.done; next = await changes.next()) {
        if (next.value.record.namespace === options.namespace) {
          yield { ...next.value, snapshot: false };
        }
      }
    } finally {
      ended.abort();
      await changes.return();
    }
  }

  /** Calls `listener` on every change of the connection state; returns the unsubscribe. */
  onStatusChange(listener: (status: ConnectionStatus) => void): () => void {
    this.#statusListeners.add(listener);
    return () => this.#statusListeners.delete(listener);
  }

  /**
   * Blocks until the sandbox's exit is recorded and returns the record. Rejects with
   * NotFoundError for a sandbox neither the store nor containerd has, with the signal's
   * reason when it aborts, with UnavailableError when the agent shuts down, and with
   * FailedPreconditionError for a record without exit of a namespace it does not follow.
   */
  async wait(key: SandboxKey, options: { signal?: AbortSignal } = {}): Promise<ExitedRecord> {
    if (this.#waiters.size >= this.#maxWaiters) {
      throw new ResourceExhaustedError(
        `too many concurrent waiters (${this.#maxWaiters}, --max-waiters); retry later`,
      );
    }
    for (;;) {
      // Register before reading: an exit committed in between is then never missed.
      const waiter = this.#waiters.register(waiterKey(key), options.signal);
      try {
        const record = await this.#find(key, options.signal);
        // Returned as read: a blocked waiter holds no record.
        if (record.exit) return record as ExitedRecord;
        this.#requireFollowed(key, record);
        log.debug("waiting for sandbox {namespace}/{id}", { ...key });
        const committed = await waiter.promise.catch((err) => {
          log.debug("stopped waiting for sandbox {namespace}/{id}: {reason}", {
            ...key,
            reason: errorText(err),
          });
          throw err;
        });
        // The record as the exit was committed: durable, no need to read it back.
        if (committed?.exit) return committed as ExitedRecord;
      } finally {
        waiter.dispose();
      }
    }
  }

  // ---- the sandboxes this agent owns (sandbox controller) ----------------------------

  /** Create: keeps the request durably (see OwnedSandboxes.create). */
  createSandbox(sandboxer: string, request: CreateRequest): Promise<OwnedSandbox> {
    return this.#ownedFor(sandboxer, "Create").create(request);
  }

  startSandbox(
    sandboxer: string,
    key: SandboxKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<StartedSandbox> {
    return this.#ownedFor(sandboxer, "Start").start(key, options);
  }

  stopSandbox(
    sandboxer: string,
    key: SandboxKey,
    options: { timeoutSecs?: number; signal?: AbortSignal } = {},
  ): Promise<void> {
    return this.#ownedFor(sandboxer, "Stop").stop(key, options);
  }

  shutdownSandbox(
    sandboxer: string,
    key: SandboxKey,
    options: { signal?: AbortSignal } = {},
  ): Promise<void> {
    return this.#ownedFor(sandboxer, "Shutdown").shutdown(key, options);
  }

  /** The owned sandboxes, when a lifecycle call names this agent's sandboxer. */
  #ownedFor(sandboxer: string, call: string): OwnedSandboxes {
    if (!this.#owned) {
      throw new UnimplementedError(
        `containerd.services.sandbox.v1.Controller/${call} is not served: this podsandboxd ` +
          "only observes sandboxes (serve --sandboxer NAME makes it a sandbox controller)",
      );
    }
    if (sandboxer !== this.#owned.sandboxer) {
      throw new InvalidArgumentError(
        `${call} is for sandboxer ${JSON.stringify(sandboxer)}, but this podsandboxd is ` +
          `sandboxer ${JSON.stringify(this.#owned.sandboxer)} (serve --sandboxer)`,
      );
    }
    return this.#owned;
  }

  // ---- lifecycle --------------------------------------------------------------------

  /**
   * Follows containerd until `signal` aborts: resumes interrupted exit handling, then runs
   * sessions, reconnecting with jittered backoff. Never rejects; problems show in `status`.
   */
  async run(signal: AbortSignal): Promise<void> {
    const running = AbortSignal.any([signal, this.#stopSessions.signal]);
    // Each on its own: owned sandboxes that cannot be read do not stop pending exits.
    await this.#owned?.restore(this.namespace).catch((err) =>
      log.error("could not read the owned sandboxes from the store: {error}", {
        error: errorText(err),
      })
    );
    await this.#tracker.restorePending().catch((err) =>
      log.error("could not read pending exits from the store: {error}", {
        error: errorText(err),
      })
    );
    if (this.#shims) this.#watchShims(running);
    if (this.#retentionMs > 0) this.#expirePeriodically(running);
    const backoff = new Backoff(this.#reconnectBackoff);
    const session = this.events === "poll" ? pollSession : streamSession;
    while (!running.aborted) {
      try {
        await session(this.#session, running);
      } catch (err) {
        this.#flush = undefined;
        if (running.aborted) break;
        if (this.#status.state === "connected") backoff.reset();
        this.#setStatus({ state: "disconnected", error: errorText(err) });
        await delay(backoff.next(), running).catch(() => {});
      }
    }
  }

  /**
   * Stops following containerd without dropping what it already said: applies its events
   * until the stream has been quiet for a moment (sandboxes dying as the node shuts down
   * are still in containerd's pipeline), commits the exits received — within `drainMs` in
   * all — then ends the sessions and releases waiters (see close). What could not be
   * committed in time is logged; the next start re-learns it from containerd's lists.
   */
  async shutdown(drainMs = DEFAULT_SHUTDOWN_DRAIN_MS): Promise<void> {
    const deadline = AbortSignal.timeout(drainMs);
    await this.#drainEvents(deadline);
    this.#stopSessions.abort();
    // No more retries; jobs already queued run once.
    this.#tracker.close(new UnavailableError("podsandboxd is shutting down"));
    await Promise.race([this.#tracker.settled(), delay(drainMs, deadline).catch(() => {})]);
    const left = this.#tracker.busyIds();
    if (left.length > 0) {
      log.warn(
        "stopping with the events of {count} sandboxes not committed within {ms} ms ({ids}); " +
          "the next start re-learns them from containerd (an exit whose task was deleted " +
          "meanwhile loses its status)",
        { count: left.length, ms: drainMs, ids: left.slice(0, 20).join(", ") },
      );
    }
    this.close();
  }

  /** Flushes containerd's events until one flush and a quiet window bring nothing new. */
  async #drainEvents(deadline: AbortSignal): Promise<void> {
    const flush = this.#flush;
    if (!flush) return;
    let seen = -1;
    try {
      while (this.#tracker.dispatched !== seen) {
        seen = this.#tracker.dispatched;
        await flush(deadline);
        await delay(SHUTDOWN_QUIET_MS, deadline);
      }
    } catch (err) {
      log.warn(
        deadline.aborted
          ? "containerd's events were still arriving when the drain time ran out; stopping"
          : "could not confirm every event of containerd was received before stopping: {error}",
        { error: errorText(err) },
      );
    }
  }

  /**
   * Waits on the shims of the sandboxes recorded as running, at once (containerd need not
   * be up); if containerd turns out unreachable, also on every other live shim of the
   * namespace in its state directory: what runs there now may have started while the
   * agent was away.
   */
  async #watchShims(signal: AbortSignal): Promise<void> {
    try {
      const { watched, known } = await this.#tracker.watchLive();
      log.debug("waiting on the shims of {count} running sandboxes", { count: watched });
      const first = await Promise.race([
        this.firstOutcome(),
        new Promise<null>((resolve) =>
          signal.addEventListener("abort", () => resolve(null), { once: true })
        ),
      ]);
      if (first?.state !== "disconnected") return;
      const ids = await this.#shimLocator!.list(this.namespace);
      log.info(
        "containerd is not reachable: waiting on {count} shims found in its state directory",
        { count: this.#tracker.watchUnknown(ids, known) },
      );
    } catch (err) {
      log.warn("could not start waiting on the shims of running sandboxes: {error}", {
        error: errorText(err),
      });
    }
  }

  /** Deletes records of sandboxes removed longer than the retention ago. */
  async #expirePeriodically(signal: AbortSignal): Promise<void> {
    const every = Math.min(Math.max(this.#retentionMs / 4, 100), 60_000);
    while (!signal.aborted) {
      try {
        await delay(every, signal);
        const cutoff = instantFromDate(new Date(this.#now().getTime() - this.#retentionMs));
        const expired = await this.#store.expireRemoved(cutoff, this.namespace);
        if (expired.length > 0) {
          log.info(
            "expired {count} records of sandboxes removed (or of namespaces not followed) before {cutoff}",
            { count: expired.length, cutoff },
          );
        }
      } catch (err) {
        if (!signal.aborted) {
          log.warn("expiring old records failed: {error}", { error: errorText(err) });
        }
      }
    }
  }

  /** Ends retries and releases every waiter with UnavailableError ("shutting down"). */
  close(): void {
    const reason = new UnavailableError("podsandboxd is shutting down");
    this.#shims?.close();
    this.#tracker.close(reason);
    this.#waiters.close(reason);
    this.#closing.abort(reason);
  }

  /** Resolves when every event handed to the controller so far has been applied (tests). */
  settled(): Promise<void> {
    return this.#tracker.settled();
  }

  #nowText(): string {
    return instantFromDate(this.#now());
  }

  /** A committed change: to watchers; a replaced record is also worth a log line. */
  #changed(change: StoreChange): void {
    if (change.removed === "replaced") {
      const old = change.record;
      log.info(
        "sandbox {namespace}/{id} is a new container with the id of one created at {createdAt}: " +
          "that container's record ({outcome}) no longer answers for this id",
        {
          namespace: old.namespace,
          id: old.id,
          createdAt: old.createdAt,
          outcome: old.exit ? `exit ${old.exit.status} at ${old.exit.exitedAt}` : old.state,
        },
      );
    }
    this.#feed.publish({ record: change.record, removed: change.removed !== undefined });
  }

  #setStatus(next: Omit<ConnectionStatus, "since">): void {
    const previous = this.#status;
    const since = previous.state === next.state ? previous.since : this.#nowText();
    this.#status = { ...next, since };
    if (next.state !== "connecting") this.#firstOutcome.resolve(this.#status);
    // One line per state change, not per retry.
    if (previous.state === next.state) return;
    if (next.state === "connected") {
      log.info("connected to containerd {version}; following namespace {namespace} ({events})", {
        version: next.containerdVersion,
        namespace: this.namespace,
        events: this.events,
      });
    } else if (next.state === "disconnected") {
      log.warn("containerd unavailable: {error}; waiting for it", { error: next.error });
    }
    for (const l of [...this.#statusListeners]) l(this.#status);
  }
}

function notFound(key: SandboxKey): NotFoundError {
  return new NotFoundError(
    `sandbox ${JSON.stringify(key.id)} not found in namespace ${key.namespace}`,
  );
}

/** The record of an owned sandbox created but not started: known, NOTREADY, no pid. */
function notStarted(owned: OwnedSandbox): SandboxRecord {
  return {
    namespace: owned.namespace,
    id: owned.id,
    state: "SANDBOX_NOTREADY",
    labels: owned.labels,
    createdAt: owned.createdAt,
    updatedAt: owned.createdAt,
  };
}
