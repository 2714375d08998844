/**
 * `ContainerdClient` over containerd's gRPC socket: one grpc-js channel for every
 * service, the `containerd-namespace` header on namespaced calls, a deadline on every
 * unary call, and typed errors at this edge.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import { ContainersService } from "../gen/containerd/services/containers/v1/containers.ts";
import type { Container } from "../gen/containerd/services/containers/v1/containers.ts";
import { EventsService } from "../gen/containerd/services/events/v1/events.ts";
import { StoreService } from "../gen/containerd/services/sandbox/v1/sandbox.ts";
import { TasksService } from "../gen/containerd/services/tasks/v1/tasks.ts";
import { VersionService } from "../gen/containerd/services/version/v1/version.ts";
import { type Process, Status } from "../gen/containerd/types/task.ts";
import { grpcTarget, serverStreamCall, unaryCall } from "../grpc/call.ts";
import { formatTimestamp } from "../time.ts";
import { logger } from "../log.ts";
import { decodeEnvelope } from "./events.ts";
import { type SandboxStoreCalls, SandboxStoreProbe } from "./sandbox_store.ts";
import type {
  AnyPayload,
  CallOptions,
  ContainerdClient,
  ContainerdEvent,
  ContainerInfo,
  DeletedTask,
  TaskInfo,
  TaskStatus,
} from "./types.ts";

const log = logger("containerd");

/** @default 10_000 — deadline of each unary call to containerd. */
export const DEFAULT_CALL_TIMEOUT_MS = 10_000;

export interface GrpcContainerdClientOptions {
  /** Socket path or unix:// URI of containerd. */
  address: string;
  /** Deadline of each unary call. @default DEFAULT_CALL_TIMEOUT_MS */
  callTimeoutMs?: number;
  /** Called with the method of every call made ("tasks.Delete"), for metrics. */
  onCall?: (method: string) => void;
}

/**
 * grpc-js backs off reconnects for up to 120 s by default; containerd's socket is local,
 * so retry quickly: a restarted containerd is reached within a few hundred ms.
 */
const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 250,
  // containerd's own limit is 16 MiB; large lists stream (ListStream) instead.
  "grpc.max_receive_message_length": 16 * 1024 * 1024,
};

const STATUS_NAMES: Record<number, TaskStatus> = {
  [Status.UNKNOWN]: "unknown",
  [Status.CREATED]: "created",
  [Status.RUNNING]: "running",
  [Status.STOPPED]: "stopped",
  [Status.PAUSED]: "paused",
  [Status.PAUSING]: "pausing",
};

function taskInfo(p: Process): TaskInfo {
  return {
    // tasks.List leaves container_id empty and puts the container's id in id.
    containerId: p.containerId || p.id,
    pid: p.pid,
    status: STATUS_NAMES[p.status] ?? "unknown",
    exitStatus: p.exitStatus,
    exitedAt: formatTimestamp(p.exitedAt),
  };
}

/** The OCI spec is JSON inside an Any; only its annotations are read. */
function specAnnotations(spec: Container["spec"]): Record<string, string> {
  if (!spec?.value?.length) return {};
  try {
    const parsed = JSON.parse(new TextDecoder().decode(spec.value));
    const annotations = parsed?.annotations;
    if (!annotations || typeof annotations !== "object") return {};
    return Object.fromEntries(
      Object.entries(annotations).filter(([, v]) => typeof v === "string"),
    ) as Record<string, string>;
  } catch {
    return {};
  }
}

function containerInfo(c: Container): ContainerInfo {
  return {
    id: c.id,
    labels: c.labels,
    image: c.image,
    createdAt: formatTimestamp(c.createdAt),
    annotations: specAnnotations(c.spec),
  };
}

export class GrpcContainerdClient implements ContainerdClient {
  readonly address: string;
  readonly #client: grpc.Client;
  readonly #timeoutMs: number;
  readonly #onCall?: (method: string) => void;
  readonly #store = new SandboxStoreProbe();

  constructor(options: GrpcContainerdClientOptions) {
    this.address = options.address;
    this.#timeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.#onCall = options.onCall;
    this.#client = new grpc.Client(
      grpcTarget(options.address),
      grpc.credentials.createInsecure(),
      CHANNEL_OPTIONS,
    );
  }

  #options(what: string, namespace: string | undefined, options: CallOptions | undefined) {
    this.#onCall?.(what.split(" ")[0]);
    return {
      what: `containerd ${what}`,
      metadata: namespace === undefined ? undefined : { "containerd-namespace": namespace },
      // A call that waits for containerd to come back is bounded by its signal instead.
      timeoutMs: options?.waitForReady ? undefined : this.#timeoutMs,
      signal: options?.signal,
      waitForReady: options?.waitForReady,
    };
  }

  /** Calls that change containerd's state are logged, so an operator can audit them. */
  #mutating(what: string): void {
    log.debug("calling containerd {call}", { call: what });
  }

  async *subscribe(filters: string[], options?: CallOptions): AsyncIterable<ContainerdEvent> {
    const stream = serverStreamCall(this.#client, EventsService.subscribe, { filters }, {
      ...this.#options("events.Subscribe", undefined, options),
      timeoutMs: undefined,
    });
    for await (const envelope of stream) yield decodeEnvelope(envelope);
  }

  async publish(
    namespace: string,
    topic: string,
    event: AnyPayload,
    options?: CallOptions,
  ): Promise<void> {
    await unaryCall(
      this.#client,
      EventsService.publish,
      { topic, event: { typeUrl: event.typeUrl, value: Buffer.from(event.value) } },
      this.#options(`events.Publish ${topic}`, namespace, options),
    );
  }

  async listContainers(
    namespace: string,
    filters: string[],
    options?: CallOptions,
  ): Promise<ContainerInfo[]> {
    const out: ContainerInfo[] = [];
    const stream = serverStreamCall(
      this.#client,
      ContainersService.listStream,
      { filters },
      this.#options(`containers.ListStream ${namespace}`, namespace, options),
    );
    for await (const message of stream) {
      if (message.container) out.push(containerInfo(message.container));
    }
    const sandboxers = await this.#store.sandboxers(
      out.map((c) => c.id),
      this.#storeCalls(namespace, options),
    );
    for (const c of out) {
      const sandboxer = sandboxers.get(c.id);
      if (sandboxer) c.sandboxer = sandboxer;
    }
    return out;
  }

  /** containerd's sandbox store (1.7+), read-only: who owns a sandbox. */
  #storeCalls(namespace: string, options: CallOptions | undefined): SandboxStoreCalls {
    return {
      get: async (id) => {
        const res = await unaryCall(
          this.#client,
          StoreService.get,
          { sandboxId: id },
          this.#options(`sandboxes.Get ${namespace}/${id}`, namespace, options),
        );
        return res.sandbox?.sandboxer ?? "";
      },
      list: async () => {
        const res = await unaryCall(
          this.#client,
          StoreService.list,
          { filters: [] },
          this.#options(`sandboxes.List ${namespace}`, namespace, options),
        );
        return new Map(res.list.map((s) => [s.sandboxId, s.sandboxer]));
      },
    };
  }

  async listTasks(namespace: string, options?: CallOptions): Promise<TaskInfo[]> {
    const res = await unaryCall(
      this.#client,
      TasksService.list,
      { filter: "" },
      this.#options(`tasks.List ${namespace}`, namespace, options),
    );
    return res.tasks.map(taskInfo);
  }

  async getTask(namespace: string, containerId: string, options?: CallOptions): Promise<TaskInfo> {
    const res = await unaryCall(
      this.#client,
      TasksService.get,
      { containerId, execId: "" },
      this.#options(`tasks.Get ${namespace}/${containerId}`, namespace, options),
    );
    if (!res.process) throw new TypeError(`containerd tasks.Get ${containerId}: empty response`);
    return taskInfo(res.process);
  }

  async killTask(
    namespace: string,
    containerId: string,
    signal: number,
    options?: CallOptions & { all?: boolean },
  ): Promise<void> {
    this.#mutating(`tasks.Kill ${namespace}/${containerId}`);
    await unaryCall(
      this.#client,
      TasksService.kill,
      { containerId, execId: "", signal, all: options?.all ?? false },
      this.#options(`tasks.Kill ${namespace}/${containerId}`, namespace, options),
    );
  }

  async deleteTask(
    namespace: string,
    containerId: string,
    options?: CallOptions,
  ): Promise<DeletedTask> {
    this.#mutating(`tasks.Delete ${namespace}/${containerId}`);
    const res = await unaryCall(
      this.#client,
      TasksService.delete,
      { containerId },
      this.#options(`tasks.Delete ${namespace}/${containerId}`, namespace, options),
    );
    return { pid: res.pid, exitStatus: res.exitStatus, exitedAt: formatTimestamp(res.exitedAt) };
  }

  async version(options?: CallOptions): Promise<{ version: string; revision: string }> {
    // A new session (or containerd restarted, maybe upgraded): its sandbox store may differ.
    this.#store.reset();
    const res = await unaryCall(
      this.#client,
      VersionService.version,
      {},
      this.#options("version.Version", undefined, options),
    );
    return { version: res.version, revision: res.revision };
  }

  close(): void {
    this.#client.close();
  }
}
