/**
 * Pure state transitions of a sandbox record. The store applies them inside one atomic
 * commit; keeping them pure makes the invariants testable without any store.
 *
 * ```
 *   (none) --discover--> NOTREADY --markRunning--> READY
 *      |                    |                        |
 *      +--------------------+------recordExit--------+--> NOTREADY + exit (final)
 * ```
 * markDeleted only stamps deletedAt and can happen in any state.
 *
 * A record belongs to one container: namespace, id and the container's creation time
 * (containerd never changes it). Every transition first compares the container it is
 * about (its description's createdAt) with the record's: an older container is stale
 * news (no change), a newer one starts a fresh record in place of the old — whatever
 * the old one recorded (an exit, a removal) never answers for the new container.
 *
 * @module
 */
import type { SandboxDescription, SandboxExit, SandboxKey, SandboxRecord } from "./types.ts";

/** A transition returns the next record, or null when nothing changes. */
export type Transition = (current: SandboxRecord | null, now: string) => SandboxRecord | null;

function fresh(key: SandboxKey, now: string): SandboxRecord {
  return {
    namespace: key.namespace,
    id: key.id,
    state: "SANDBOX_NOTREADY",
    labels: {},
    updatedAt: now,
  };
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Which container a description is about, relative to the record's: "older" and
 * "newer" only when both creation times are known (instants compare as strings).
 */
export function containerGeneration(
  record: SandboxRecord | null,
  d: SandboxDescription | undefined,
): "older" | "same" | "newer" {
  if (!record?.createdAt || !d?.createdAt || d.createdAt === record.createdAt) return "same";
  return d.createdAt < record.createdAt ? "older" : "newer";
}

/**
 * The record a transition starts from: null for stale news (an older container), a
 * fresh record for a newer container or a missing record, else the current one.
 */
function baseFor(
  key: SandboxKey,
  current: SandboxRecord | null,
  d: SandboxDescription | undefined,
  now: string,
): SandboxRecord | null {
  switch (containerGeneration(current, d)) {
    case "older":
      return null;
    case "newer":
      return fresh(key, now);
    case "same":
      return current ?? fresh(key, now);
  }
}

/** Merges a description in; returns the record unchanged (same object) when nothing differs. */
function describe(record: SandboxRecord, d: SandboxDescription | undefined): SandboxRecord {
  if (!d) return record;
  const next = { ...record };
  if (d.pid && !record.pid) next.pid = d.pid;
  // Only a record without one takes a creation time: a different one is another container.
  if (d.createdAt !== undefined && record.createdAt === undefined) next.createdAt = d.createdAt;
  if (d.labels !== undefined && !sameJson(d.labels, record.labels)) next.labels = d.labels;
  if (d.pod !== undefined && !sameJson(d.pod, record.pod)) next.pod = d.pod;
  if (d.sandboxer !== undefined && d.sandboxer !== record.sandboxer) next.sandboxer = d.sandboxer;
  return sameJson(next, record) ? record : next;
}

export function discover(key: SandboxKey, description: SandboxDescription): Transition {
  return (current, now) => {
    const base = baseFor(key, current, description, now);
    if (base === null) return null;
    const next = describe(base, description);
    if (current && next === current) return null;
    return { ...next, updatedAt: now };
  };
}

export function markRunning(
  key: SandboxKey,
  pid: number,
  description?: SandboxDescription,
): Transition {
  return (current, now) => {
    const start = baseFor(key, current, description, now);
    if (start === null) return null;
    const base = describe(start, description);
    // An exit is final: a late or replayed create/start must not revive the sandbox.
    if (base.exit) return current && base === current ? null : { ...base, updatedAt: now };
    if (current && base === current && current.state === "SANDBOX_READY" && current.pid === pid) {
      return null;
    }
    return { ...base, state: "SANDBOX_READY", pid: pid || base.pid, updatedAt: now };
  };
}

export function recordExit(
  key: SandboxKey,
  exit: Omit<SandboxExit, "recordedAt">,
  description?: SandboxDescription,
): Transition {
  return (current, now) => {
    const start = baseFor(key, current, description, now);
    // The first recorded exit stands: containerd re-publishes exits after restarts.
    if (start === null || start.exit) return null;
    // An exit containerd timed before the container was created is an earlier
    // container's (a replayed event of a reused id): it never answers for this one.
    if (start.createdAt && exit.exitedAtKnown !== false && exit.exitedAt < start.createdAt) {
      return null;
    }
    const base = describe(start, description);
    return {
      ...base,
      state: "SANDBOX_NOTREADY",
      exit: { ...exit, recordedAt: now },
      updatedAt: now,
    };
  };
}

export function markDeleted(at: string): Transition {
  return (current, now) => {
    if (!current || current.deletedAt) return null;
    return { ...current, deletedAt: at, updatedAt: now };
  };
}
