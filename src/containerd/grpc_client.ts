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
import { ContentService } from "../gen/containerd/services/content/v1/content.ts";
import { EventsService } from "../gen/containerd/services/events/v1/events.ts";
import { ImagesService } from "../gen/containerd/services/images/v1/images.ts";
import { LeasesService } from "../gen/containerd/services/leases/v1/leases.ts";
import { StoreService } from "../gen/containerd/services/sandbox/v1/sandbox.ts";
import { SnapshotsService } from "../gen/containerd/services/snapshots/v1/snapshots.ts";
import { TasksService } from "../gen/containerd/services/tasks/v1/tasks.ts";
import { VersionService } from "../gen/containerd/services/version/v1/version.ts";
import type { Descriptor as ProtoDescriptor } from "../gen/containerd/types/descriptor.ts";
import type { Mount as ProtoMount } from "../gen/containerd/types/mount.ts";
import type { Process } from "../gen/containerd/types/task.ts";
import { grpcTarget, serverStreamCall, unaryCall } from "../grpc/call.ts";
import { formatTimestamp, wallNow } from "../time.ts";
import { logger } from "../log.ts";
import { decodeEnvelope } from "./events.ts";
import { type SandboxStoreCalls, SandboxStoreProbe } from "./sandbox_store.ts";
import { taskStatusName } from "./task_status.ts";
import type {
  AnyPayload,
  CallOptions,
  ContainerdClient,
  ContainerdEvent,
  ContainerInfo,
  ContainerRecord,
  DeletedTask,
  Descriptor,
  ImageRecord,
  Mount,
  NewContainer,
  ResourceCallOptions,
  SandboxRuntimeClient,
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
  /**
   * Called with every event from Subscribe: when grpc-js handed its bytes over (before
   * decoding) and when it was decoded and read off the stream, in wall-clock ms (exit
   * tracing; without it, no timestamps are taken).
   */
  onEvent?: (event: ContainerdEvent, receivedAt: number, decodedAt: number) => void;
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

/** containerd's type URL of an OCI runtime spec in a container record. */
const SPEC_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

function mountOf(m: ProtoMount): Mount {
  return { type: m.type, source: m.source, target: m.target, options: m.options };
}

function descriptorOf(d: ProtoDescriptor | undefined): Descriptor {
  return {
    mediaType: d?.mediaType ?? "",
    digest: d?.digest ?? "",
    size: d?.size ?? 0,
    annotations: d?.annotations ?? {},
  };
}

function containerRecord(c: Container): ContainerRecord {
  return {
    id: c.id,
    labels: c.labels,
    image: c.image,
    runtimeName: c.runtime?.name ?? "",
    snapshotter: c.snapshotter,
    snapshotKey: c.snapshotKey,
    createdAt: formatTimestamp(c.createdAt),
  };
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

export class GrpcContainerdClient implements ContainerdClient, SandboxRuntimeClient {
  readonly address: string;
  readonly #client: grpc.Client;
  readonly #timeoutMs: number;
  readonly #onCall?: (method: string) => void;
  readonly #store = new SandboxStoreProbe();
  readonly #onEvent?: GrpcContainerdClientOptions["onEvent"];

  constructor(options: GrpcContainerdClientOptions) {
    this.address = options.address;
    this.#timeoutMs = options.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
    this.#onCall = options.onCall;
    this.#onEvent = options.onEvent;
    this.#client = new grpc.Client(
      grpcTarget(options.address),
      grpc.credentials.createInsecure(),
      CHANNEL_OPTIONS,
    );
  }

  #options(
    what: string,
    namespace: string | undefined,
    options: ResourceCallOptions | undefined,
  ) {
    this.#onCall?.(what.split(" ")[0]);
    const metadata: Record<string, string> = {};
    if (namespace !== undefined) metadata["containerd-namespace"] = namespace;
    // Resources made under a lease stay until the lease goes (containerd's GC).
    if (options?.lease) metadata["containerd-lease"] = options.lease;
    return {
      what: `containerd ${what}`,
      metadata: Object.keys(metadata).length ? metadata : undefined,
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
    const onEvent = this.#onEvent;
    // Traced, the deserializer notes when grpc-js handed each message's bytes over.
    const received = onEvent && new WeakMap<object, number>();
    const method = received
      ? {
        ...EventsService.subscribe,
        responseDeserialize: (bytes: Buffer) => {
          const at = wallNow();
          const envelope = EventsService.subscribe.responseDeserialize(bytes);
          received.set(envelope, at);
          return envelope;
        },
      }
      : EventsService.subscribe;
    const stream = serverStreamCall(this.#client, method, { filters }, {
      ...this.#options("events.Subscribe", undefined, options),
      timeoutMs: undefined,
    });
    for await (const envelope of stream) {
      const event = decodeEnvelope(envelope);
      onEvent?.(event, received!.get(envelope) ?? wallNow(), wallNow());
      yield event;
    }
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
    options?: CallOptions & { sandboxers?: boolean },
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
    if (options?.sandboxers === false) return out;
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

  async getImage(namespace: string, name: string, options?: CallOptions): Promise<ImageRecord> {
    const res = await unaryCall(
      this.#client,
      ImagesService.get,
      { name },
      this.#options(`images.Get ${namespace}/${name}`, namespace, options),
    );
    if (!res.image) throw new TypeError(`containerd images.Get ${name}: empty response`);
    return {
      name: res.image.name,
      labels: res.image.labels,
      target: descriptorOf(res.image.target),
    };
  }

  async contentInfo(
    namespace: string,
    digest: string,
    options?: CallOptions,
  ): Promise<{ digest: string; size: number; labels: Record<string, string> }> {
    const res = await unaryCall(
      this.#client,
      ContentService.info,
      { digest },
      this.#options(`content.Info ${namespace}/${digest}`, namespace, options),
    );
    return {
      digest: res.info?.digest ?? digest,
      size: res.info?.size ?? 0,
      labels: res.info?.labels ?? {},
    };
  }

  async readContent(
    namespace: string,
    digest: string,
    options: CallOptions & { maxBytes: number },
  ): Promise<Uint8Array> {
    const what = `content.Read ${namespace}/${digest}`;
    const { size } = await this.contentInfo(namespace, digest, options);
    if (size > options.maxBytes) {
      throw new RangeError(
        `containerd ${what}: blob is ${size} bytes, more than the ${options.maxBytes} accepted`,
      );
    }
    const out = new Uint8Array(size);
    let filled = 0;
    const stream = serverStreamCall(
      this.#client,
      ContentService.read,
      { digest, offset: 0, size },
      this.#options(what, namespace, options),
    );
    for await (const chunk of stream) {
      // The blob cannot change (content-addressed), so chunks past its size are an error.
      if (chunk.offset !== filled || filled + chunk.data.length > size) {
        throw new RangeError(
          `containerd ${what}: chunk at offset ${chunk.offset} (+${chunk.data.length}) does not fit a ${size}-byte blob read to ${filled}`,
        );
      }
      out.set(chunk.data, filled);
      filled += chunk.data.length;
    }
    if (filled !== size) {
      throw new RangeError(`containerd ${what}: read ${filled} of ${size} bytes`);
    }
    return out;
  }

  async createLease(
    namespace: string,
    id: string,
    labels: Record<string, string>,
    options?: CallOptions,
  ): Promise<void> {
    this.#mutating(`leases.Create ${namespace}/${id}`);
    await unaryCall(
      this.#client,
      LeasesService.create,
      { id, labels },
      this.#options(`leases.Create ${namespace}/${id}`, namespace, options),
    );
  }

  async deleteLease(
    namespace: string,
    id: string,
    options?: CallOptions & { sync?: boolean },
  ): Promise<void> {
    this.#mutating(`leases.Delete ${namespace}/${id}`);
    await unaryCall(
      this.#client,
      LeasesService.delete,
      { id, sync: options?.sync ?? false },
      this.#options(`leases.Delete ${namespace}/${id}`, namespace, options),
    );
  }

  async prepareSnapshot(
    namespace: string,
    snapshotter: string,
    key: string,
    parent: string,
    labels: Record<string, string>,
    options?: ResourceCallOptions,
  ): Promise<Mount[]> {
    const what = `snapshots.Prepare ${namespace}/${snapshotter}/${key}`;
    this.#mutating(what);
    const res = await unaryCall(
      this.#client,
      SnapshotsService.prepare,
      { snapshotter, key, parent, labels },
      this.#options(what, namespace, options),
    );
    return res.mounts.map(mountOf);
  }

  async snapshotMounts(
    namespace: string,
    snapshotter: string,
    key: string,
    options?: CallOptions,
  ): Promise<Mount[]> {
    const res = await unaryCall(
      this.#client,
      SnapshotsService.mounts,
      { snapshotter, key },
      this.#options(`snapshots.Mounts ${namespace}/${snapshotter}/${key}`, namespace, options),
    );
    return res.mounts.map(mountOf);
  }

  async removeSnapshot(
    namespace: string,
    snapshotter: string,
    key: string,
    options?: CallOptions,
  ): Promise<void> {
    const what = `snapshots.Remove ${namespace}/${snapshotter}/${key}`;
    this.#mutating(what);
    await unaryCall(
      this.#client,
      SnapshotsService.remove,
      { snapshotter, key },
      this.#options(what, namespace, options),
    );
  }

  async createContainer(
    namespace: string,
    container: NewContainer,
    options?: ResourceCallOptions,
  ): Promise<ContainerRecord> {
    const what = `containers.Create ${namespace}/${container.id}`;
    this.#mutating(what);
    const options_ = container.runtime.options;
    const res = await unaryCall(
      this.#client,
      ContainersService.create,
      {
        container: {
          id: container.id,
          labels: container.labels,
          image: container.image,
          runtime: {
            name: container.runtime.name,
            options: options_
              ? { typeUrl: options_.typeUrl, value: Buffer.from(options_.value) }
              : undefined,
          },
          spec: {
            typeUrl: SPEC_TYPE_URL,
            value: Buffer.from(JSON.stringify(container.spec)),
          },
          snapshotter: container.snapshotter,
          snapshotKey: container.snapshotKey,
          createdAt: undefined,
          updatedAt: undefined,
          extensions: {},
        },
      },
      this.#options(what, namespace, options),
    );
    if (!res.container) throw new TypeError(`containerd ${what}: empty response`);
    return containerRecord(res.container);
  }

  async getContainer(
    namespace: string,
    id: string,
    options?: CallOptions,
  ): Promise<ContainerRecord> {
    const res = await unaryCall(
      this.#client,
      ContainersService.get,
      { id },
      this.#options(`containers.Get ${namespace}/${id}`, namespace, options),
    );
    if (!res.container) throw new TypeError(`containerd containers.Get ${id}: empty response`);
    return containerRecord(res.container);
  }

  async deleteContainer(namespace: string, id: string, options?: CallOptions): Promise<void> {
    const what = `containers.Delete ${namespace}/${id}`;
    this.#mutating(what);
    await unaryCall(
      this.#client,
      ContainersService.delete,
      { id },
      this.#options(what, namespace, options),
    );
  }

  async createTask(
    namespace: string,
    containerId: string,
    rootfs: Mount[],
    options?: ResourceCallOptions,
  ): Promise<{ pid: number }> {
    const what = `tasks.Create ${namespace}/${containerId}`;
    this.#mutating(what);
    const res = await unaryCall(
      this.#client,
      TasksService.create,
      { containerId, rootfs, stdin: "", stdout: "", stderr: "", terminal: false },
      this.#options(what, namespace, options),
    );
    return { pid: res.pid };
  }

  async startTask(
    namespace: string,
    containerId: string,
    options?: CallOptions,
  ): Promise<{ pid: number }> {
    const what = `tasks.Start ${namespace}/${containerId}`;
    this.#mutating(what);
    const res = await unaryCall(
      this.#client,
      TasksService.start,
      { containerId, execId: "" },
      this.#options(what, namespace, options),
    );
    return { pid: res.pid };
  }

  async waitTask(
    namespace: string,
    containerId: string,
    options?: CallOptions,
  ): Promise<{ exitStatus: number; exitedAt?: string }> {
    const res = await unaryCall(
      this.#client,
      TasksService.wait,
      { containerId, execId: "" },
      // Blocks until the exit: bounded by the caller's signal, not a deadline.
      {
        ...this.#options(`tasks.Wait ${namespace}/${containerId}`, namespace, options),
        timeoutMs: undefined,
      },
    );
    return { exitStatus: res.exitStatus, exitedAt: formatTimestamp(res.exitedAt) };
  }

  close(): void {
    this.#client.close();
  }
}
