/**
 * A scripted, in-process `ContainerdClient` for controller tests: containers, tasks and
 * an event stream the test drives, a log of every call, and faults on cue (a call that
 * fails N times, a stream cut, a lost publish). Real containerd covers the real thing
 * (e2e tests); this covers what it cannot be made to do on demand.
 *
 * @module
 */
import { MARKER_TOPIC } from "../../src/containerd/events.ts";
import type {
  AnyPayload,
  CallOptions,
  ContainerdClient,
  ContainerdEvent,
  ContainerInfo,
  DeletedTask,
  TaskInfo,
} from "../../src/containerd/types.ts";
import { NotFoundError, UnavailableError } from "../../src/errors.ts";
import { instantFromDate } from "../../src/time.ts";
import { AsyncQueue } from "./async_queue.ts";

export const SANDBOX_LABELS = { "io.cri-containerd.kind": "sandbox" };

type Method = keyof ContainerdClient;

/** An event as a test writes it: namespace and topic are filled in. */
export type EventInput = ContainerdEvent extends infer E
  ? E extends ContainerdEvent ? Omit<E, "namespace" | "topic"> & { topic?: string } : never
  : never;

/** Evaluates the containerd filter forms podsandboxd emits: `id=="x"`, `labels."k"==v`, ANDed with ",". */
function matches(c: ContainerInfo, filter: string): boolean {
  return filter.split(",").every((cond) => {
    const m = /^(id|labels\.(?:"([^"]+)"|([^=]+)))==(.*)$/.exec(cond.trim());
    if (!m) throw new Error(`fake containerd cannot evaluate filter ${JSON.stringify(cond)}`);
    const value = m[4].startsWith('"') ? JSON.parse(m[4]) : m[4];
    if (m[1] === "id") return c.id === value;
    return c.labels[m[2] ?? m[3]] === value;
  });
}

export class FakeContainerd implements ContainerdClient {
  readonly namespace: string;
  readonly containers = new Map<string, ContainerInfo>();
  readonly tasks = new Map<string, TaskInfo>();
  readonly calls: Array<{ method: Method; args: unknown[] }> = [];
  readonly #subscribers = new Set<AsyncQueue<ContainerdEvent>>();
  readonly #faults = new Map<Method, Array<{ containerId?: string; error: unknown }>>();
  #down = false;
  readonly #upListeners = new Set<() => void>();
  #nextPid = 1000;
  #held?: ContainerdEvent[];
  /** Publishes to drop (to simulate a publish racing the subscription). */
  dropPublishes = 0;
  /** Told of every init exit (what a shim sees), containerd up or not. */
  readonly exitListeners = new Set<(id: string, status: number, exitedAt: string) => void>();
  /** Containers whose init process ignores SIGTERM. */
  readonly ignoresTerm = new Set<string>();

  constructor(namespace = "k8s.io") {
    this.namespace = namespace;
  }

  // ---- scripting --------------------------------------------------------------------

  /** Makes the next calls of `method` fail with `errors`, in order. */
  failNext(method: Method, ...errors: unknown[]): void {
    this.failNextFor(method, undefined, ...errors);
  }

  /** Like failNext, but only calls about `containerId` fail. */
  failNextFor(method: Method, containerId: string | undefined, ...errors: unknown[]): void {
    const list = this.#faults.get(method) ?? [];
    list.push(...errors.map((error) => ({ containerId, error })));
    this.#faults.set(method, list);
  }

  callsOf(method: Method): unknown[][] {
    return this.calls.filter((c) => c.method === method).map((c) => c.args);
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  emit(event: EventInput): void {
    const full = {
      namespace: this.namespace,
      topic: event.topic ?? `/${event.kind}`,
      ...event,
    } as ContainerdEvent;
    if (this.#held) this.#held.push(full);
    else for (const s of this.#subscribers) s.push(full);
  }

  /**
   * The event stream lags: events (markers included) published from now on reach
   * subscribers only at `release()`, in order.
   */
  hold(): void {
    this.#held ??= [];
  }

  /** Delivers the held events, in order, and ends the lag. */
  release(): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    for (const e of held) for (const s of this.#subscribers) s.push(e);
  }

  addContainer(
    id: string,
    options: {
      sandbox?: boolean;
      labels?: Record<string, string>;
      createdAt?: Date;
      emit?: boolean;
    } = {},
  ): void {
    const labels = { ...(options.sandbox ?? true ? SANDBOX_LABELS : {}), ...options.labels };
    this.containers.set(id, {
      id,
      labels,
      image: "docker.io/local/busybox:latest",
      createdAt: instantFromDate(options.createdAt ?? new Date()),
      annotations: {},
    });
    if (options.emit ?? true) this.emit({ kind: "container-create", id });
  }

  startTask(id: string, options: { emit?: boolean } = {}): number {
    const pid = this.#nextPid++;
    this.tasks.set(id, { containerId: id, pid, status: "running", exitStatus: 0 });
    if (options.emit ?? true) {
      this.emit({ kind: "task-create", containerId: id, pid });
      this.emit({ kind: "task-start", containerId: id, pid });
    }
    return pid;
  }

  /** The init process exits: task STOPPED and (unless emit: false) a TaskExit event. */
  exitTask(id: string, status: number, options: { emit?: boolean; at?: Date } = {}): string {
    const task = this.tasks.get(id);
    if (!task) throw new Error(`fake containerd: no task ${id}`);
    const exitedAt = instantFromDate(options.at ?? new Date());
    this.tasks.set(id, { ...task, status: "stopped", exitStatus: status, exitedAt });
    // The shim sees the exit whether or not containerd is there to publish it.
    for (const l of [...this.exitListeners]) l(id, status, exitedAt);
    if (options.emit ?? true) {
      this.emit({
        kind: "task-exit",
        containerId: id,
        processId: id,
        pid: task.pid,
        exitStatus: status,
        exitedAt,
      });
    }
    return exitedAt;
  }

  /** The task's owner deletes it (as CRI does), with its TaskDelete event. */
  ownerDeletesTask(id: string, options: { emit?: boolean } = {}): void {
    const task = this.tasks.get(id);
    this.tasks.delete(id);
    if (task && (options.emit ?? true)) {
      this.emit({
        kind: "task-delete",
        containerId: id,
        processId: "",
        pid: task.pid,
        exitStatus: task.exitStatus,
        exitedAt: task.exitedAt,
      });
    }
  }

  removeContainer(id: string, options: { emit?: boolean } = {}): void {
    this.tasks.delete(id);
    this.containers.delete(id);
    if (options.emit ?? true) this.emit({ kind: "container-delete", id });
  }

  /** containerd goes away: streams fail, calls fail UNAVAILABLE until `up()`. */
  down(): void {
    this.#down = true;
    for (const s of this.#subscribers) {
      s.fail(new UnavailableError("fake containerd: connection lost"));
    }
    this.#subscribers.clear();
  }

  up(): void {
    this.#down = false;
    for (const l of [...this.#upListeners]) l();
    this.#upListeners.clear();
  }

  // ---- ContainerdClient -------------------------------------------------------------

  #enter(method: Method, args: unknown[], options?: CallOptions): void {
    this.calls.push({ method, args });
    if (options?.signal?.aborted) throw options.signal.reason;
    if (this.#down) throw new UnavailableError(`fake containerd ${method}: connection refused`);
    const faults = this.#faults.get(method) ?? [];
    const i = faults.findIndex((f) => f.containerId === undefined || f.containerId === args[1]);
    if (i >= 0) throw faults.splice(i, 1)[0].error;
  }

  subscribe(filters: string[], options?: CallOptions): AsyncIterable<ContainerdEvent> {
    this.#enter("subscribe", [filters], options);
    const queue = new AsyncQueue<ContainerdEvent>();
    this.#subscribers.add(queue);
    options?.signal?.addEventListener("abort", () => {
      queue.fail(options.signal!.reason);
      this.#subscribers.delete(queue);
    }, { once: true });
    return queue;
  }

  publish(
    namespace: string,
    topic: string,
    event: AnyPayload,
    options?: CallOptions,
  ): Promise<void> {
    return this.#async(() => {
      this.#enter("publish", [namespace, topic], options);
      if (this.dropPublishes > 0) {
        this.dropPublishes--;
        return;
      }
      if (topic === MARKER_TOPIC) {
        this.emit({ kind: "marker", topic, nonce: new TextDecoder().decode(event.value) });
      }
    });
  }

  listContainers(
    namespace: string,
    filters: string[],
    options?: CallOptions,
  ): Promise<ContainerInfo[]> {
    return this.#async(() => {
      this.#enter("listContainers", [namespace, filters], options);
      return [...this.containers.values()].filter((c) =>
        filters.length === 0 || filters.some((f) => matches(c, f))
      ).map((c) => structuredClone(c));
    });
  }

  listTasks(namespace: string, options?: CallOptions): Promise<TaskInfo[]> {
    return this.#async(() => {
      this.#enter("listTasks", [namespace], options);
      return [...this.tasks.values()].map((t) => ({ ...t }));
    });
  }

  getTask(namespace: string, containerId: string, options?: CallOptions): Promise<TaskInfo> {
    return this.#async(() => {
      this.#enter("getTask", [namespace, containerId], options);
      const task = this.tasks.get(containerId);
      if (!task) throw new NotFoundError(`fake containerd: task ${containerId} not found`);
      return { ...task };
    });
  }

  killTask(
    namespace: string,
    containerId: string,
    signal: number,
    options?: CallOptions & { all?: boolean },
  ): Promise<void> {
    return this.#async(() => {
      this.#enter("killTask", [namespace, containerId, signal, options?.all], options);
      const task = this.tasks.get(containerId);
      if (!task) throw new NotFoundError(`fake containerd: task ${containerId} not found`);
      // A running init process dies of SIGKILL, and of SIGTERM unless it ignores it.
      if (task.status !== "running") return;
      if (signal === 9) this.exitTask(containerId, 137);
      else if (signal === 15 && !this.ignoresTerm.has(containerId)) {
        this.exitTask(containerId, 143);
      }
    });
  }

  deleteTask(namespace: string, containerId: string, options?: CallOptions): Promise<DeletedTask> {
    return this.#async(() => {
      this.#enter("deleteTask", [namespace, containerId], options);
      const task = this.tasks.get(containerId);
      if (!task) throw new NotFoundError(`fake containerd: task ${containerId} not found`);
      this.ownerDeletesTask(containerId);
      return { pid: task.pid, exitStatus: task.exitStatus, exitedAt: task.exitedAt };
    });
  }

  async version(options?: CallOptions): Promise<{ version: string; revision: string }> {
    if (options?.waitForReady) await this.#ready(options.signal);
    return this.#async(() => {
      this.#enter("version", [], options);
      return { version: "fake", revision: "0" };
    });
  }

  /** Resolves when the fake is up (what grpc-js waitForReady does on a real channel). */
  #ready(signal?: AbortSignal): Promise<void> {
    if (!this.#down) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onUp = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#upListeners.delete(onUp);
        reject(signal!.reason);
      };
      this.#upListeners.add(onUp);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  close(): void {
    for (const s of this.#subscribers) s.fail(new UnavailableError("fake containerd: closed"));
    this.#subscribers.clear();
  }

  /** Answers on a later tick, like a real round trip. */
  async #async<T>(fn: () => T): Promise<T> {
    await Promise.resolve();
    return fn();
  }
}
