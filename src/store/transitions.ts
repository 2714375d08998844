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

/** Merges a description in; returns the record unchanged (same object) when nothing differs. */
function describe(record: SandboxRecord, d: SandboxDescription | undefined): SandboxRecord {
  if (!d) return record;
  const next = { ...record };
  if (d.pid && !record.pid) next.pid = d.pid;
  if (d.createdAt !== undefined && d.createdAt !== record.createdAt) next.createdAt = d.createdAt;
  if (d.labels !== undefined && !sameJson(d.labels, record.labels)) next.labels = d.labels;
  if (d.pod !== undefined && !sameJson(d.pod, record.pod)) next.pod = d.pod;
  return sameJson(next, record) ? record : next;
}

export function discover(key: SandboxKey, description: SandboxDescription): Transition {
  return (current, now) => {
    const base = current ?? fresh(key, now);
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
    const base = describe(current ?? fresh(key, now), description);
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
    // The first recorded exit stands: containerd re-publishes exits after restarts.
    if (current?.exit) return null;
    const base = describe(current ?? fresh(key, now), description);
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
