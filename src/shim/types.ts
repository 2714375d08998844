/**
 * What podsandboxd needs from containerd's shims, in its own terms: where a task's shim
 * listens (`ShimLocator`) and a read-only task client on it (`ShimClient`: Wait and
 * State, never Kill, Delete or Shutdown). The controller depends on these interfaces;
 * `StateDirShimLocator` and `dialShim` implement them over containerd's state directory
 * and ttrpc, and tests implement them with fakes.
 *
 * @module
 */
import type { TaskStatus } from "../containerd/types.ts";
import type { StatusError } from "../errors.ts";

/** The task API a shim serves: v2 for containerd 1.x shims, v3 for bootstrap version 3 (2.x). */
export type ShimTaskApi = 2 | 3;

/** Where one task's shim listens. */
export interface ShimEndpoint {
  namespace: string;
  /** The task (container) id. */
  id: string;
  /** Path of the shim's unix socket (e.g. /run/containerd/s/<hash>). */
  socket: string;
  api: ShimTaskApi;
  /** The ttrpc service of that API: "containerd.task.v2.Task" or "containerd.task.v3.Task". */
  service: string;
  /** The file the endpoint was read from (bootstrap.json or address), for messages. */
  source: string;
}

export interface ShimLocator {
  /**
   * The endpoint of the shim serving task `namespace/id`. Rejects with NotFoundError
   * when the task has no shim files (no task, or it was deleted), InvalidArgumentError
   * for a malformed namespace or id, UnimplementedError for a shim podsandboxd cannot
   * speak to (gRPC, vsock, a newer task API), FailedPreconditionError for unreadable files.
   */
  locate(namespace: string, id: string): Promise<ShimEndpoint>;
  /** Ids of the tasks of `namespace` that have shim files, sorted; [] when there are none. */
  list(namespace: string): Promise<string[]>;
}

/** A process's exit as its shim reports it. */
export interface ShimExit {
  exitStatus: number;
  /** RFC 3339 with nanoseconds; absent when the shim sent no usable time. */
  exitedAt?: string;
}

/** A task's init process as its shim reports it. */
export interface ShimState {
  id: string;
  pid: number;
  status: TaskStatus;
  /** Meaningful only when status is "stopped". */
  exitStatus: number;
  /** RFC 3339; absent while the process runs. */
  exitedAt?: string;
}

export interface ShimCallOptions {
  /** Ends the call: it rejects with CancelledError (or the signal's reason if typed). */
  signal?: AbortSignal;
  /** Deadline in milliseconds; the call rejects with DeadlineExceededError. */
  timeoutMs?: number;
}

/** A connection to one shim; only reads. */
export interface ShimClient extends AsyncDisposable {
  readonly endpoint: ShimEndpoint;
  /**
   * Resolves (never rejects) once the connection is over: UnavailableError when the
   * shim went away (it exits after containerd deletes its last task, or was killed),
   * CancelledError after close().
   */
  readonly closed: Promise<StatusError>;
  /**
   * Blocks until task `id`'s init process exits and answers its status and time (at
   * once if it already has). Rejects UnavailableError if the shim goes away first,
   * NotFoundError if the shim has no such task. Note: an aborted Wait stays blocked
   * inside the shim until the process exits (ttrpc cannot cancel a call); abort rarely.
   */
  wait(id: string, options?: ShimCallOptions): Promise<ShimExit>;
  /** The current state of task `id`'s init process. */
  state(id: string, options?: ShimCallOptions): Promise<ShimState>;
  /** Closes the connection; pending calls reject with CancelledError. */
  close(): void;
}

/** Opens a ShimClient on an endpoint (`dialShim`, or a fake in tests). */
export type ShimDialer = (
  endpoint: ShimEndpoint,
  options?: { signal?: AbortSignal },
) => Promise<ShimClient>;
