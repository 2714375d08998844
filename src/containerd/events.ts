/**
 * Decoding of containerd's event envelopes into `ContainerdEvent`s. Pure: no I/O, never
 * throws — a payload that cannot be decoded becomes a "malformed" event the controller
 * logs and skips.
 *
 * @module
 */
import {
  ContainerCreate,
  ContainerDelete,
  TaskCreate,
  TaskDelete,
  TaskExit,
  TaskStart,
} from "../gen/containerd/events/events.ts";
import type { Envelope } from "../gen/containerd/services/events/v1/events.ts";
import { formatTimestamp } from "../time.ts";
import type { AnyPayload, ContainerdEvent } from "./types.ts";

/** Topic and type of podsandboxd's subscription marker (see Controller). */
export const MARKER_TOPIC = "/podsandboxd/sync";
export const MARKER_TYPE_URL = "podsandboxd.v1.SyncMarker";

/** The topics podsandboxd subscribes to (besides its marker). */
export const WATCHED_TOPICS = [
  "/tasks/create",
  "/tasks/start",
  "/tasks/exit",
  "/tasks/delete",
  "/containers/create",
  "/containers/delete",
] as const;

/** Encodes a marker payload carrying `nonce`. */
export function markerPayload(nonce: string): AnyPayload {
  return { typeUrl: MARKER_TYPE_URL, value: new TextEncoder().encode(nonce) };
}

/** containerd's type URLs are "containerd.events.TaskExit", sometimes with a host prefix. */
function typeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf("/") + 1);
}

/** Decodes one envelope. */
export function decodeEnvelope(envelope: Envelope): ContainerdEvent {
  const base = {
    namespace: envelope.namespace,
    topic: envelope.topic,
    timestamp: formatTimestamp(envelope.timestamp),
  };
  const typeUrl = envelope.event?.typeUrl ?? "";
  const value = envelope.event?.value ?? new Uint8Array();
  try {
    switch (typeName(typeUrl)) {
      case "containerd.events.TaskCreate": {
        const e = TaskCreate.decode(value);
        return { ...base, kind: "task-create", containerId: e.containerId, pid: e.pid };
      }
      case "containerd.events.TaskStart": {
        const e = TaskStart.decode(value);
        return { ...base, kind: "task-start", containerId: e.containerId, pid: e.pid };
      }
      case "containerd.events.TaskExit": {
        const e = TaskExit.decode(value);
        return {
          ...base,
          kind: "task-exit",
          containerId: e.containerId,
          processId: e.id,
          pid: e.pid,
          // proto3 omits zeros: an absent exit_status is a real 0.
          exitStatus: e.exitStatus,
          exitedAt: formatTimestamp(e.exitedAt),
        };
      }
      case "containerd.events.TaskDelete": {
        const e = TaskDelete.decode(value);
        return {
          ...base,
          kind: "task-delete",
          containerId: e.containerId,
          processId: e.id,
          pid: e.pid,
          exitStatus: e.exitStatus,
          exitedAt: formatTimestamp(e.exitedAt),
        };
      }
      case "containerd.events.ContainerCreate":
        return { ...base, kind: "container-create", id: ContainerCreate.decode(value).id };
      case "containerd.events.ContainerDelete":
        return { ...base, kind: "container-delete", id: ContainerDelete.decode(value).id };
      case MARKER_TYPE_URL:
        return {
          ...base,
          kind: "marker",
          nonce: new TextDecoder("utf-8", { fatal: true }).decode(value),
        };
      default:
        return { ...base, kind: "ignored", typeUrl };
    }
  } catch (err) {
    return {
      ...base,
      kind: "malformed",
      typeUrl,
      reason: err instanceof Error ? err.message : String(err),
    };
  }
}
