/**
 * The durable record podsandboxd keeps per sandbox, and the store interface the
 * controller writes it through.
 *
 * @module
 */
import type { OwnedSandboxStore } from "./owned.ts";

/** containerd's names for sandbox states. */
export type SandboxState = "SANDBOX_READY" | "SANDBOX_NOTREADY";

/**
 * How an exit was learned:
 * - "event": containerd's TaskExit (or TaskDelete) event for the init process;
 * - "task-status": containerd listed the task as STOPPED with its status;
 * - "unreadable": the exit could not be read; status 255 at the time it was observed
 *   (records of earlier versions, which so recorded a TaskExit without a usable time);
 * - "task-missing": the task was gone before its exit was seen; status not known (255);
 * - "shim": the sandbox's shim answered a Wait for its init process (also while
 *   containerd was down).
 */
export type ExitSource = "event" | "task-status" | "unreadable" | "task-missing" | "shim";

/** Status used when the real one is not known (as containerd's CRI does). */
export const UNKNOWN_EXIT_STATUS = 255;

export interface SandboxExit {
  status: number;
  /** RFC 3339 with nanoseconds. */
  exitedAt: string;
  source: ExitSource;
  /** False when `status` is the 255 placeholder for a lost status. */
  statusKnown: boolean;
  /**
   * False when `exitedAt` is when the agent learned of the exit, not the exit's own time
   * (containerd gave no usable time, or the exit was inferred). Absent means true.
   */
  exitedAtKnown?: boolean;
  /** Why the status is what it is, when that is not plain. */
  reason?: string;
  /** When the agent committed this exit. */
  recordedAt: string;
}

/** Pod identity the CRI attaches to a sandbox container (absent for non-CRI sandboxes). */
export interface PodMetadata {
  name?: string;
  namespace?: string;
  uid?: string;
}

/**
 * One record per container: a container is identified by its namespace, id and creation
 * time (containerd never changes a container's createdAt). A container created later
 * with the same id starts a new record that replaces the old one.
 */
export interface SandboxRecord {
  namespace: string;
  id: string;
  state: SandboxState;
  /** The sandbox's init process, once a task was created. */
  pid?: number;
  createdAt?: string;
  labels: Record<string, string>;
  pod?: PodMetadata;
  /** The sandbox controller owning it, per containerd's sandbox store (1.7+). */
  sandboxer?: string;
  /** Set once and never changed: the first recorded exit stands. */
  exit?: SandboxExit;
  /** When the agent saw the container deleted; the record is kept. */
  deletedAt?: string;
  updatedAt: string;
}

export interface SandboxKey {
  namespace: string;
  id: string;
}

/** What a sandbox container looks like, as discovered in containerd. */
export interface SandboxDescription {
  /** Init pid, when known from containerd (kept if the record has one). */
  pid?: number;
  createdAt?: string;
  labels?: Record<string, string>;
  pod?: PodMetadata;
  sandboxer?: string;
}

/** The outcome of a store operation: the record now stored and whether this call changed it. */
export interface StoreResult {
  record: SandboxRecord;
  changed: boolean;
  /** The record of an earlier container with the same id, which this call replaced. */
  replaced?: SandboxRecord;
}

/**
 * An exit whose handling (task delete, then record) has started but not finished:
 * kept durably so a restarted agent resumes it.
 */
export interface PendingExit {
  key: SandboxKey;
  exit: Omit<SandboxExit, "recordedAt">;
  description?: SandboxDescription;
  /** Failed attempts so far. */
  attempts: number;
  lastError?: string;
  since: string;
}

export interface ListFilter {
  namespace?: string;
  state?: SandboxState;
}

/**
 * Durable sandbox records. Every operation is one atomic transaction; the invariants
 * (one record per container; an exit is recorded once, later contradicting exits are
 * ignored, a record with an exit never goes back to READY) hold in the store itself, not
 * in its callers. Operations whose description names an older container than the
 * record's are stale news and change nothing; a newer container replaces the record.
 */
export interface SandboxStore {
  /** Create requests of the sandboxes podsandboxd owns (sandbox controller mode). */
  readonly owned: OwnedSandboxStore;
  get(key: SandboxKey): Promise<SandboxRecord | null>;
  list(filter?: ListFilter): Promise<SandboxRecord[]>;
  /** Creates the record (NOTREADY, no exit) if missing; refreshes its description. */
  discover(key: SandboxKey, description: SandboxDescription): Promise<StoreResult>;
  /** READY with `pid`, unless an exit is already recorded. */
  markRunning(
    key: SandboxKey,
    pid: number,
    description?: SandboxDescription,
  ): Promise<StoreResult>;
  /**
   * Records the exit unless one is recorded already (then `changed` is false). Clears a
   * pending exit of the sandbox in the same commit.
   */
  recordExit(
    key: SandboxKey,
    exit: Omit<SandboxExit, "recordedAt">,
    description?: SandboxDescription,
  ): Promise<StoreResult>;
  /** Notes that containerd's container is gone; the record stays. No-op for unknown keys. */
  markDeleted(key: SandboxKey, at: string): Promise<StoreResult | null>;
  /**
   * Deletes records whose container was removed before `before` (retention), and records
   * of namespaces other than `followed` last updated before `before` (nothing keeps
   * those current); returns them. A record still pending an exit is kept.
   */
  expireRemoved(before: string, followed: string): Promise<SandboxRecord[]>;
  /** Keeps an exit whose handling starts now (no-op if one is pending already). */
  savePendingExit(
    key: SandboxKey,
    exit: Omit<SandboxExit, "recordedAt">,
    description?: SandboxDescription,
  ): Promise<void>;
  /** Counts a failed attempt of a pending exit. */
  notePendingFailure(key: SandboxKey, error: string): Promise<void>;
  listPendingExits(filter?: { namespace?: string }): Promise<PendingExit[]>;
  close(): void;
}
