/**
 * How the CLI prints records: one JSON document with --json, readable text otherwise.
 *
 * @module
 */
import {
  type AgentStatus,
  ExitSource,
  type Sandbox,
  SandboxState,
} from "../gen/podsandboxd/v1/podsandboxd.ts";
import { formatTimestamp } from "../time.ts";

const STATE_NAMES: Record<number, string> = {
  [SandboxState.SANDBOX_READY]: "SANDBOX_READY",
  [SandboxState.SANDBOX_NOTREADY]: "SANDBOX_NOTREADY",
};

const SOURCE_NAMES: Record<number, string> = {
  [ExitSource.EXIT_SOURCE_EVENT]: "event",
  [ExitSource.EXIT_SOURCE_TASK_STATUS]: "task-status",
  [ExitSource.EXIT_SOURCE_UNREADABLE]: "unreadable",
  [ExitSource.EXIT_SOURCE_TASK_MISSING]: "task-missing",
  [ExitSource.EXIT_SOURCE_SHIM]: "shim",
};

/** The JSON form of a record; absent fields are omitted. */
export function sandboxJson(s: Sandbox): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: s.id,
    namespace: s.namespace,
    state: STATE_NAMES[s.state] ?? "SANDBOX_UNKNOWN",
  };
  if (s.pid) out.pid = s.pid;
  const createdAt = formatTimestamp(s.createdAt);
  if (createdAt) out.createdAt = createdAt;
  const exitedAt = formatTimestamp(s.exitedAt);
  if (exitedAt) out.exitedAt = exitedAt;
  if (s.exitStatus !== undefined) {
    out.exitStatus = s.exitStatus;
    out.exitStatusKnown = s.exitStatusKnown;
    out.exitTimeKnown = s.exitTimeKnown;
    out.exitSource = SOURCE_NAMES[s.exitSource] ?? "unknown";
    if (s.exitReason) out.exitReason = s.exitReason;
  }
  const deletedAt = formatTimestamp(s.deletedAt);
  if (deletedAt) out.deletedAt = deletedAt;
  const pod: Record<string, string> = {};
  if (s.podName) pod.name = s.podName;
  if (s.podNamespace) pod.namespace = s.podNamespace;
  if (s.podUid) pod.uid = s.podUid;
  if (Object.keys(pod).length) out.pod = pod;
  if (s.sandboxer) out.sandboxer = s.sandboxer;
  if (Object.keys(s.labels).length) out.labels = s.labels;
  return out;
}

function exitText(s: Sandbox): string {
  if (s.exitStatus === undefined) return "";
  if (s.exitStatusKnown) return String(s.exitStatus);
  return `${s.exitStatus} (status not known${s.exitReason ? `: ${s.exitReason}` : ""})`;
}

/** Multi-line text of one record. */
export function sandboxText(s: Sandbox): string {
  const j = sandboxJson(s);
  const rows: Array<[string, unknown]> = [
    ["id", j.id],
    ["namespace", j.namespace],
    ["state", j.state],
    ["pid", j.pid],
    ["created", j.createdAt],
    [
      "exited",
      j.exitedAt && !s.exitTimeKnown ? `${j.exitedAt} (when the agent learned of it)` : j.exitedAt,
    ],
    ["exit status", exitText(s) || undefined],
    ["exit learned from", j.exitSource],
    ["container removed", j.deletedAt],
  ];
  if (s.podName || s.podNamespace) {
    rows.push(["pod", `${s.podNamespace}/${s.podName}${s.podUid ? ` (uid ${s.podUid})` : ""}`]);
  }
  if (s.sandboxer) rows.push(["sandboxer", s.sandboxer]);
  return rows.filter(([, v]) => v !== undefined && v !== "")
    .map(([k, v]) => `${(k + ":").padEnd(19)}${v}`).join("\n");
}

/** A table of records. */
export function sandboxTable(list: Sandbox[]): string {
  const rows = [["ID", "STATE", "PID", "EXIT", "EXITED AT"]];
  for (const s of list) {
    const j = sandboxJson(s);
    rows.push([
      s.id,
      String(j.state),
      s.pid ? String(s.pid) : "-",
      s.exitStatus === undefined
        ? "-"
        : s.exitStatusKnown
        ? String(s.exitStatus)
        : `${s.exitStatus}?`,
      formatTimestamp(s.exitedAt) ?? "-",
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd()).join("\n");
}

/** Prints exactly one JSON document. */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value));
}

/** On stderr, when the agent was not connected to containerd as it answered. */
export function warnIfStale(agent: AgentStatus | undefined): void {
  if (!agent || agent.containerd === "connected") return;
  const since = formatTimestamp(agent.since);
  console.error(
    `warning: podsandboxd is ${
      agent.containerd === "connecting" ? "still connecting to" : "not connected to"
    } containerd` +
      `${since ? ` since ${since}` : ""}${agent.error ? ` (${agent.error})` : ""}; ` +
      "records may not show the latest changes",
  );
}
