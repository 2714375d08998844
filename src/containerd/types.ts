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
  /** Containers matching any of `filters` ([] = all). */
  listContainers(
    namespace: string,
    filters: string[],
    options?: CallOptions,
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
