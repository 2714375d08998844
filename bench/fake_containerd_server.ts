/**
 * A fake containerd for the synthetic benchmarks: grpc-js on a unix socket, serving the
 * subset podsandboxd calls with the generated service definitions (Events.Subscribe and
 * Publish, Containers.ListStream and List, Tasks.List/Get/Delete/Kill, Version). It holds
 * N sandbox containers (CRI-like labels and pod annotations) with running tasks and, on
 * cue, writes their TaskExit envelopes into every open subscription as fast as the
 * stream takes them — pre-encoded, so the fake's own encoding is not measured.
 *
 * Publishes are echoed into the open subscriptions (podsandboxd waits for its
 * `/podsandboxd/sync` markers to come back).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { TaskExit } from "../src/gen/containerd/events/events.ts";
import {
  type Container,
  ContainersService,
  type ListContainersRequest,
} from "../src/gen/containerd/services/containers/v1/containers.ts";
import {
  Envelope,
  EventsService,
  type PublishRequest,
  type SubscribeRequest,
} from "../src/gen/containerd/services/events/v1/events.ts";
import {
  type DeleteTaskRequest,
  type GetRequest,
  type KillRequest,
  TasksService,
} from "../src/gen/containerd/services/tasks/v1/tasks.ts";
import { VersionService } from "../src/gen/containerd/services/version/v1/version.ts";
import { type Process, Status } from "../src/gen/containerd/types/task.ts";
import type { Timestamp } from "../src/time.ts";
import { wallMs } from "./proc.ts";

export const SANDBOX_KIND_LABEL = "io.cri-containerd.kind";

interface FakeTask {
  pid: number;
  status: Status;
  exitStatus: number;
  exitedAt?: Timestamp;
}

/** A prepared burst: the envelopes, encoded, and the ids they end. */
export interface ExitBurst {
  ids: string[];
  frames: Buffer[];
}

export interface EmitResult {
  /** Wall-clock ms when the first envelope was written. */
  firstAt: number;
  /** Wall-clock ms when the last envelope was handed to the socket. */
  lastAt: number;
  count: number;
}

function timestampOf(ms: number): Timestamp {
  return { seconds: Math.floor(ms / 1000), nanos: Math.round((ms % 1000) * 1e6) };
}

function hex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/** Evaluates the filter forms podsandboxd sends: `id=="x"`, `labels."k"==v`, ANDed with ",". */
function matches(c: Container, filter: string): boolean {
  return filter.split(",").every((cond) => {
    const m = /^(id|labels\.(?:"([^"]+)"|([^=]+)))==(.*)$/.exec(cond.trim());
    if (!m) return false;
    const value = m[4].startsWith('"') ? JSON.parse(m[4]) : m[4];
    if (m[1] === "id") return c.id === value;
    return c.labels[m[2] ?? m[3]] === value;
  });
}

function notFound(what: string): Partial<grpc.ServiceError> {
  return { code: grpc.status.NOT_FOUND, details: `${what}: not found` };
}

// deno-lint-ignore no-explicit-any
type Handler = (call: any, callback?: any) => void;

export class FakeContainerdServer {
  readonly socket: string;
  readonly namespace: string;
  readonly containers = new Map<string, Container>();
  readonly tasks = new Map<string, FakeTask>();
  readonly #server: grpc.Server;
  readonly #subscriptions = new Set<grpc.ServerWritableStream<SubscribeRequest, unknown>>();
  readonly #subscriptionListeners = new Set<() => void>();
  #nextPid = 10_000;

  private constructor(socket: string, namespace: string) {
    this.socket = socket;
    this.namespace = namespace;
    this.#server = new grpc.Server();
    // Subscribe writes pre-encoded envelopes (Buffers) as well as Envelope objects.
    const events = {
      ...EventsService,
      subscribe: {
        ...EventsService.subscribe,
        responseSerialize: (value: Envelope | Buffer) =>
          Buffer.isBuffer(value) ? value : Buffer.from(Envelope.encode(value).finish()),
      },
    };
    const add = (definition: unknown, handlers: Record<string, Handler>) =>
      this.#server.addService(
        definition as grpc.ServiceDefinition,
        handlers as grpc.UntypedServiceImplementation,
      );
    add(events, { subscribe: this.#subscribe, publish: this.#publish });
    add(ContainersService, {
      get: (_call, cb) => cb({ code: grpc.status.UNIMPLEMENTED }),
      list: this.#listContainers,
      listStream: this.#listContainerStream,
    });
    add(TasksService, {
      list: this.#listTasks,
      get: this.#getTask,
      delete: this.#deleteTask,
      kill: this.#killTask,
    });
    add(VersionService, {
      version: (_call, cb) => cb(null, { version: "fake-bench", revision: "0" }),
    });
  }

  /** Serves on `socket` (removed first if it exists). */
  static async start(socket: string, namespace = "k8s.io"): Promise<FakeContainerdServer> {
    await Deno.remove(socket).catch(() => {});
    const fake = new FakeContainerdServer(socket, namespace);
    await new Promise<void>((resolve, reject) =>
      fake.#server.bindAsync(
        `unix://${socket}`,
        grpc.ServerCredentials.createInsecure(),
        (err) => (err ? reject(err) : resolve()),
      )
    );
    return fake;
  }

  // ---- scripting --------------------------------------------------------------------

  /**
   * Adds `count` sandbox containers, like the ones containerd's CRI creates (64-hex ids,
   * the CRI's labels and pod annotations), each with a running task. Returns their ids.
   */
  addSandboxes(count: number): string[] {
    const ids: string[] = [];
    const spec = (name: string, uid: string) => ({
      typeUrl: "types.containerd.io/opencontainers/runtime-spec/1/Spec",
      value: Buffer.from(JSON.stringify({
        ociVersion: "1.1.0",
        annotations: {
          "io.kubernetes.cri.container-type": "sandbox",
          "io.kubernetes.cri.sandbox-name": name,
          "io.kubernetes.cri.sandbox-namespace": "default",
          "io.kubernetes.cri.sandbox-uid": uid,
        },
      })),
    });
    const created = timestampOf(Date.now());
    for (let i = 0; i < count; i++) {
      const id = hex(32);
      const name = `bench-${this.containers.size}`;
      const uid = crypto.randomUUID();
      this.containers.set(id, {
        id,
        labels: {
          [SANDBOX_KIND_LABEL]: "sandbox",
          "io.kubernetes.pod.name": name,
          "io.kubernetes.pod.namespace": "default",
          "io.kubernetes.pod.uid": uid,
          app: "bench",
        },
        image: "registry.k8s.io/pause:3.9",
        runtime: { name: "io.containerd.runc.v2", options: undefined },
        spec: spec(name, uid),
        snapshotter: "overlayfs",
        snapshotKey: id,
        createdAt: created,
        updatedAt: created,
        extensions: {},
      });
      this.tasks.set(id, { pid: this.#nextPid++, status: Status.RUNNING, exitStatus: 0 });
      ids.push(id);
    }
    return ids;
  }

  /** Every task back to running (a fresh pid each), as before a burst. */
  reviveAll(): void {
    for (const id of this.containers.keys()) {
      this.tasks.set(id, { pid: this.#nextPid++, status: Status.RUNNING, exitStatus: 0 });
    }
  }

  /** Encodes the TaskExit envelopes of `ids` (exit 137, exited now). */
  prepareExits(ids: string[], status = 137): ExitBurst {
    const now = timestampOf(Date.now());
    const frames = ids.map((id) => {
      const task = this.tasks.get(id);
      const event = TaskExit.encode({
        containerId: id,
        id,
        pid: task?.pid ?? 0,
        exitStatus: status,
        exitedAt: now,
      }).finish();
      return Buffer.from(
        Envelope.encode({
          timestamp: now,
          namespace: this.namespace,
          topic: "/tasks/exit",
          event: { typeUrl: "containerd.events.TaskExit", value: Buffer.from(event) },
        }).finish(),
      );
    });
    return { ids, frames };
  }

  /**
   * Marks the burst's tasks stopped and writes its envelopes into every open
   * subscription, as fast as the streams take them.
   */
  async emit(burst: ExitBurst, status = 137): Promise<EmitResult> {
    const exitedAt = timestampOf(Date.now());
    for (const id of burst.ids) {
      const task = this.tasks.get(id);
      if (task) Object.assign(task, { status: Status.STOPPED, exitStatus: status, exitedAt });
    }
    const streams = [...this.#subscriptions];
    const firstAt = wallMs();
    let lastAt = firstAt;
    await Promise.all(streams.map(async (stream) => {
      const frames = burst.frames;
      for (let i = 0; i < frames.length - 1; i++) {
        if (!stream.write(frames[i])) {
          await new Promise<void>((resolve) => stream.once("drain", () => resolve()));
        }
      }
      if (frames.length > 0) {
        // The last envelope's callback fires once it has been handed to the socket.
        await new Promise<void>((resolve) => stream.write(frames.at(-1), () => resolve()));
      }
      lastAt = Math.max(lastAt, wallMs());
    }));
    return { firstAt, lastAt, count: burst.frames.length };
  }

  get subscriberCount(): number {
    return this.#subscriptions.size;
  }

  /** Resolves once at least `count` subscriptions are open. */
  async waitForSubscribers(count: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#subscriptions.size < count) {
      if (Date.now() > deadline) {
        throw new Error(`fake containerd: ${count} subscriptions not open within ${timeoutMs} ms`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, 100);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.#subscriptionListeners.add(done);
      });
    }
  }

  async close(): Promise<void> {
    for (const s of this.#subscriptions) s.end();
    this.#subscriptions.clear();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, 1_000);
      this.#server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    await Deno.remove(this.socket).catch(() => {});
  }

  // ---- handlers ---------------------------------------------------------------------

  #subscribe: Handler = (call: grpc.ServerWritableStream<SubscribeRequest, unknown>) => {
    this.#subscriptions.add(call);
    const gone = () => this.#subscriptions.delete(call);
    call.on("cancelled", gone);
    call.on("close", gone);
    call.on("error", gone);
    for (const l of [...this.#subscriptionListeners]) l();
    this.#subscriptionListeners.clear();
  };

  #publish: Handler = (
    call: grpc.ServerUnaryCall<PublishRequest, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ) => {
    const namespace = String(call.metadata.get("containerd-namespace")[0] ?? "");
    const envelope: Envelope = {
      timestamp: timestampOf(Date.now()),
      namespace,
      topic: call.request.topic,
      event: call.request.event,
    };
    // Every publish (podsandboxd's /podsandboxd/sync markers among them) goes to every subscriber.
    const frame = Buffer.from(Envelope.encode(envelope).finish());
    for (const s of this.#subscriptions) s.write(frame);
    callback(null, {});
  };

  #selected(request: ListContainersRequest): Container[] {
    const all = [...this.containers.values()];
    if (request.filters.length === 0) return all;
    return all.filter((c) => request.filters.some((f) => matches(c, f)));
  }

  #listContainers: Handler = (
    call: grpc.ServerUnaryCall<ListContainersRequest, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ) => callback(null, { containers: this.#selected(call.request) });

  #listContainerStream: Handler = (
    call: grpc.ServerWritableStream<ListContainersRequest, unknown>,
  ) => {
    for (const container of this.#selected(call.request)) call.write({ container });
    call.end();
  };

  #process(id: string, task: FakeTask): Process {
    return {
      containerId: "",
      id,
      pid: task.pid,
      status: task.status,
      exitStatus: task.exitStatus,
      exitedAt: task.exitedAt ?? { seconds: -62135596800, nanos: 0 },
    };
  }

  #listTasks: Handler = (_call: unknown, callback: grpc.sendUnaryData<unknown>) =>
    callback(null, { tasks: [...this.tasks].map(([id, t]) => this.#process(id, t)) });

  #getTask: Handler = (
    call: grpc.ServerUnaryCall<GetRequest, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ) => {
    const id = call.request.containerId;
    const task = this.tasks.get(id);
    if (!task) return callback(notFound(`task ${id}`));
    callback(null, { process: { ...this.#process(id, task), containerId: id } });
  };

  #deleteTask: Handler = (
    call: grpc.ServerUnaryCall<DeleteTaskRequest, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ) => {
    const id = call.request.containerId;
    const task = this.tasks.get(id);
    if (!task) return callback(notFound(`task ${id}`));
    this.tasks.delete(id);
    callback(null, { pid: task.pid, exitStatus: task.exitStatus, exitedAt: task.exitedAt });
  };

  #killTask: Handler = (
    call: grpc.ServerUnaryCall<KillRequest, unknown>,
    callback: grpc.sendUnaryData<unknown>,
  ) => {
    const task = this.tasks.get(call.request.containerId);
    if (!task) return callback(notFound(`task ${call.request.containerId}`));
    if (task.status === Status.STOPPED) {
      return callback({ code: grpc.status.NOT_FOUND, details: "process already finished" });
    }
    callback(null, {});
  };
}
