/**
 * What the rest of podsandboxd needs from containerd, in its own terms. The controller
 * depends on this interface only; `GrpcContainerdClient` implements it over containerd's
 * gRPC socket and tests implement it with fakes.
 *
 * @module
 */

/** Options every containerd call accepts. */
export interface CallOptions {
  /** Ends the call early (rejects with CancelledError). */
  signal?: AbortSignal;
  /**
   * Wait for containerd to be reachable instead of failing UNAVAILABLE at once; the
   * call then has no deadline (end it with `signal`).
   */
  waitForReady?: boolean;
}

/** Task (init process) status, as containerd reports it. */
export type TaskStatus = "unknown" | "created" | "running" | "stopped" | "paused" | "pausing";

/** A task as listed or fetched from containerd. */
export interface TaskInfo {
  containerId: string;
  pid: number;
  status: TaskStatus;
  /** Meaningful only when status is "stopped". */
  exitStatus: number;
  /** RFC 3339; absent while running. */
  exitedAt?: string;
}

/** A container as listed from containerd (only the fields podsandboxd reads). */
export interface ContainerInfo {
  id: string;
  labels: Record<string, string>;
  image: string;
  createdAt?: string;
  /** Annotations of the container's OCI runtime spec (where CRI puts pod metadata). */
  annotations: Record<string, string>;
  /**
   * The sandbox controller that owns it in containerd's sandbox store ("podsandbox" for
   * containerd 2.x's CRI pods). Absent on containerd 1.6 (no store), for containers the
   * store does not hold (1.7's CRI pods, plain containers), and when the store failed.
   */
  sandboxer?: string;
}

/** Result of deleting a task: its final exit. */
export interface DeletedTask {
  pid: number;
  exitStatus: number;
  exitedAt?: string;
}

interface EventBase {
  namespace: string;
  topic: string;
  /** When containerd published the event (RFC 3339). */
  timestamp?: string;
}

/** A decoded containerd event; anything podsandboxd does not act on is "ignored". */
export type ContainerdEvent =
  | EventBase & { kind: "task-create"; containerId: string; pid: number }
  | EventBase & { kind: "task-start"; containerId: string; pid: number }
  | EventBase & {
    kind: "task-exit";
    containerId: string;
    /** Equals containerId for the init process; the exec id for exec processes. */
    processId: string;
    pid: number;
    exitStatus: number;
    /** Absent when the event carried no usable time (an unreadable exit). */
    exitedAt?: string;
  }
  | EventBase & {
    kind: "task-delete";
    containerId: string;
    processId: string;
    pid: number;
    exitStatus: number;
    exitedAt?: string;
  }
  | EventBase & { kind: "container-create"; id: string }
  | EventBase & { kind: "container-delete"; id: string }
  /** podsandboxd's own sync marker, published to learn that a subscription is live. */
  | EventBase & { kind: "marker"; nonce: string }
  | EventBase & { kind: "ignored"; typeUrl: string }
  /** A payload that could not be decoded; `reason` says why. */
  | EventBase & { kind: "malformed"; typeUrl: string; reason: string };

/** A payload to publish, already encoded. */
export interface AnyPayload {
  typeUrl: string;
  value: Uint8Array;
}

/** The containerd operations podsandboxd uses. Failures reject with src/errors.ts classes. */
export interface ContainerdClient {
  /** Subscribes to events matching any of `filters`; the iterable throws when the stream fails. */
  subscribe(filters: string[], options?: CallOptions): AsyncIterable<ContainerdEvent>;
  publish(
    namespace: string,
    topic: string,
    event: AnyPayload,
    options?: CallOptions,
  ): Promise<void>;
  /**
   * Containers matching any of `filters` ([] = all), with the sandboxer that owns each
   * (containerd 1.7+) unless `sandboxers` is false.
   */
  listContainers(
    namespace: string,
    filters: string[],
    options?: CallOptions & { sandboxers?: boolean },
  ): Promise<ContainerInfo[]>;
  listTasks(namespace: string, options?: CallOptions): Promise<TaskInfo[]>;
  /** Rejects with NotFoundError when the container has no task. */
  getTask(namespace: string, containerId: string, options?: CallOptions): Promise<TaskInfo>;
  killTask(
    namespace: string,
    containerId: string,
    signal: number,
    options?: CallOptions & { all?: boolean },
  ): Promise<void>;
  /** Rejects with NotFoundError when the task is already gone. */
  deleteTask(namespace: string, containerId: string, options?: CallOptions): Promise<DeletedTask>;
  version(options?: CallOptions): Promise<{ version: string; revision: string }>;
  close(): void;
}

/** Calls that make resources: `lease` (a containerd lease id) keeps them from GC until it goes. */
export interface ResourceCallOptions extends CallOptions {
  lease?: string;
}

/** A filesystem mount as a snapshotter returns it (and a task takes it as its rootfs). */
export interface Mount {
  type: string;
  source: string;
  /** Relative target inside the rootfs; "" for a snapshot's root. */
  target: string;
  options: string[];
}

/** An OCI content descriptor. */
export interface Descriptor {
  mediaType: string;
  /** "sha256:<hex>" */
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

/** An image record: a name and the manifest (or index) it points at. */
export interface ImageRecord {
  name: string;
  labels: Record<string, string>;
  target: Descriptor;
}

/** An opaque protobuf Any passed through to containerd (e.g. runc's options). */
export interface AnyValue {
  typeUrl: string;
  value: Uint8Array;
}

/** What a container is created with. */
export interface NewContainer {
  id: string;
  labels: Record<string, string>;
  /** The image name, for the record. */
  image: string;
  runtime: { name: string; options?: AnyValue };
  /** The OCI runtime spec, serialised to JSON by the client. */
  spec: unknown;
  snapshotter: string;
  snapshotKey: string;
}

/** A container record with the fields a sandbox's cleanup reads. */
export interface ContainerRecord {
  id: string;
  labels: Record<string, string>;
  image: string;
  runtimeName: string;
  snapshotter: string;
  snapshotKey: string;
  /** RFC 3339. */
  createdAt?: string;
}

/**
 * The containerd operations that run and remove a pod sandbox (images, content,
 * snapshots, leases, containers, tasks). Apart from ContainerdClient so the observer's
 * fakes need not implement them. Failures reject with src/errors.ts classes.
 */
export interface SandboxRuntimeClient
  extends Pick<ContainerdClient, "getTask" | "killTask" | "deleteTask"> {
  /** Rejects with NotFoundError when no image has that name. */
  getImage(namespace: string, name: string, options?: CallOptions): Promise<ImageRecord>;
  /** Size and labels of a blob; NotFoundError when the store lacks it. */
  contentInfo(
    namespace: string,
    digest: string,
    options?: CallOptions,
  ): Promise<{ digest: string; size: number; labels: Record<string, string> }>;
  /** Reads a whole blob; RangeError (before reading) when it is larger than `maxBytes`. */
  readContent(
    namespace: string,
    digest: string,
    options: CallOptions & { maxBytes: number },
  ): Promise<Uint8Array>;
  /** Creates a lease; `labels` e.g. {"containerd.io/gc.expire": RFC 3339}. */
  createLease(
    namespace: string,
    id: string,
    labels: Record<string, string>,
    options?: CallOptions,
  ): Promise<void>;
  /**
   * NotFoundError for an unknown lease. `sync`: containerd collects what only the lease
   * held before it answers.
   */
  deleteLease(
    namespace: string,
    id: string,
    options?: CallOptions & { sync?: boolean },
  ): Promise<void>;
  /** NotFoundError when `parent` is missing; AlreadyExists (RemoteError) for a taken key. */
  prepareSnapshot(
    namespace: string,
    snapshotter: string,
    key: string,
    parent: string,
    labels: Record<string, string>,
    options?: ResourceCallOptions,
  ): Promise<Mount[]>;
  snapshotMounts(
    namespace: string,
    snapshotter: string,
    key: string,
    options?: CallOptions,
  ): Promise<Mount[]>;
  /** NotFoundError when there is no such snapshot. */
  removeSnapshot(
    namespace: string,
    snapshotter: string,
    key: string,
    options?: CallOptions,
  ): Promise<void>;
  createContainer(
    namespace: string,
    container: NewContainer,
    options?: ResourceCallOptions,
  ): Promise<ContainerRecord>;
  /** NotFoundError for an unknown container. */
  getContainer(namespace: string, id: string, options?: CallOptions): Promise<ContainerRecord>;
  /** NotFoundError for an unknown container. Its snapshot stays. */
  deleteContainer(namespace: string, id: string, options?: CallOptions): Promise<void>;
  /** Creates the container's init process with no IO on `rootfs`; resolves with its pid. */
  createTask(
    namespace: string,
    containerId: string,
    rootfs: Mount[],
    options?: ResourceCallOptions,
  ): Promise<{ pid: number }>;
  startTask(
    namespace: string,
    containerId: string,
    options?: CallOptions,
  ): Promise<{ pid: number }>;
  /** Blocks (no deadline; end it with `signal`) until the task exits. */
  waitTask(
    namespace: string,
    containerId: string,
    options?: CallOptions,
  ): Promise<{ exitStatus: number; exitedAt?: string }>;
}
