/**
 * containerd's task status enum (containerd.v1.types.Status, used by the tasks service
 * and by the shims' task API alike) in podsandboxd's terms.
 *
 * @module
 */
import { Status } from "../gen/containerd/types/task.ts";
import type { TaskStatus } from "./types.ts";

const STATUS_NAMES: Record<number, TaskStatus> = {
  [Status.UNKNOWN]: "unknown",
  [Status.CREATED]: "created",
  [Status.RUNNING]: "running",
  [Status.STOPPED]: "stopped",
  [Status.PAUSED]: "paused",
  [Status.PAUSING]: "pausing",
};

/** The TaskStatus of a wire status number; "unknown" for numbers containerd does not define. */
export function taskStatusName(status: number): TaskStatus {
  return STATUS_NAMES[status] ?? "unknown";
}
