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
import { TasksService } from "../gen/containerd/services/tasks/v1/tasks.ts";
import { VersionService } from "../gen/containerd/services/version/v1/version.ts";
import type { Process } from "../gen/containerd/types/task.ts";
import { grpcTarget, serverStreamCall, unaryCall } from "../grpc/call.ts";
import { formatTimestamp } from "../time.ts";
import { logger } from "../log.ts";
import { decodeEnvelope } from "./events.ts";
import { taskStatusName } from "./task_status.ts";
import type {
  AnyPayload,
  CallOptions,
  ContainerdClient,
  ContainerdEvent,
  ContainerInfo,
  DeletedTask,
  TaskInfo,
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

function taskInfo(p: Process): TaskInfo {
  return {
    // tasks.List leaves container_id empty and puts the container's id in id.
    containerId: p.containerId || p.id,
    pid: p.pid,
    status: taskStatusName(p.status),
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
    return out;
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
