/**
 * decodeEnvelope: containerd's event envelopes, built with the generated encoders.
 */
import {
  decodeEnvelope,
  MARKER_TOPIC,
  MARKER_TYPE_URL,
  markerPayload,
} from "../../src/containerd/events.ts";
import {
  ContainerCreate,
  ContainerDelete,
  TaskCreate,
  TaskDelete,
  TaskExit,
  TaskStart,
} from "../../src/gen/containerd/events/events.ts";
import type { Envelope } from "../../src/gen/containerd/services/events/v1/events.ts";
import { Buffer } from "node:buffer";
import { assert, assertEquals } from "../harness/assert.ts";

const NS = "k8s.io";
const PUBLISHED = { seconds: 1795777137, nanos: 42 };
const PUBLISHED_TEXT = "2026-11-27T10:58:57.000000042Z";
const EXITED = { seconds: 1795777100, nanos: 123456789 };
const EXITED_TEXT = "2026-11-27T10:58:20.123456789Z";

function envelope(topic: string, typeUrl: string, value: Uint8Array): Envelope {
  return {
    timestamp: PUBLISHED,
    namespace: NS,
    topic,
    event: { typeUrl, value: Buffer.from(value) },
  };
}

const base = (topic: string) => ({ namespace: NS, topic, timestamp: PUBLISHED_TEXT });

Deno.test("TaskExit decodes with nanosecond exit time and process id", () => {
  const value = TaskExit.encode({
    containerId: "sb",
    id: "sb",
    pid: 4242,
    exitStatus: 137,
    exitedAt: EXITED,
  }).finish();
  assertEquals(decodeEnvelope(envelope("/tasks/exit", "containerd.events.TaskExit", value)), {
    ...base("/tasks/exit"),
    kind: "task-exit",
    containerId: "sb",
    processId: "sb",
    pid: 4242,
    exitStatus: 137,
    exitedAt: EXITED_TEXT,
  });
});

Deno.test("TaskExit with exit_status 0 (omitted on the wire by proto3) decodes as 0", () => {
  const value = TaskExit.encode({
    containerId: "sb",
    id: "sb",
    pid: 1,
    exitStatus: 0,
    exitedAt: EXITED,
  }).finish();
  const withOne = TaskExit.encode({
    containerId: "sb",
    id: "sb",
    pid: 1,
    exitStatus: 1,
    exitedAt: EXITED,
  }).finish();
  assertEquals(withOne.length - value.length, 2, "the zero status is not on the wire");
  const event = decodeEnvelope(envelope("/tasks/exit", "containerd.events.TaskExit", value));
  assert(event.kind === "task-exit", event.kind);
  assertEquals(event.exitStatus, 0);
  assertEquals(event.exitedAt, EXITED_TEXT);
});

Deno.test("an exec process's TaskExit keeps its own process id", () => {
  const value = TaskExit.encode({
    containerId: "sb",
    id: "exec-7",
    pid: 99,
    exitStatus: 2,
    exitedAt: EXITED,
  }).finish();
  const event = decodeEnvelope(envelope("/tasks/exit", "containerd.events.TaskExit", value));
  assert(event.kind === "task-exit", event.kind);
  assertEquals(event.containerId, "sb");
  assertEquals(event.processId, "exec-7");
});

Deno.test("a TaskExit with Go's zero time or no time has no exitedAt", () => {
  const zero = TaskExit.encode({
    containerId: "sb",
    id: "sb",
    pid: 1,
    exitStatus: 5,
    exitedAt: { seconds: -62135596800, nanos: 0 },
  }).finish();
  const none = TaskExit.encode({
    containerId: "sb",
    id: "sb",
    pid: 1,
    exitStatus: 5,
    exitedAt: undefined,
  }).finish();
  for (const value of [zero, none]) {
    const event = decodeEnvelope(envelope("/tasks/exit", "containerd.events.TaskExit", value));
    assert(event.kind === "task-exit", event.kind);
    assertEquals(event.exitedAt, undefined);
    assertEquals(event.exitStatus, 5);
  }
});

Deno.test("a type URL with a host prefix is recognised by its last segment", () => {
  const value = TaskStart.encode({ containerId: "sb", pid: 7 }).finish();
  const event = decodeEnvelope(
    envelope("/tasks/start", "types.containerd.io/containerd.events.TaskStart", value),
  );
  assertEquals(event, { ...base("/tasks/start"), kind: "task-start", containerId: "sb", pid: 7 });
});

Deno.test("TaskCreate, TaskStart and TaskDelete decode", () => {
  assertEquals(
    decodeEnvelope(
      envelope(
        "/tasks/create",
        "containerd.events.TaskCreate",
        TaskCreate.encode({ containerId: "sb", pid: 10 }).finish(),
      ),
    ),
    { ...base("/tasks/create"), kind: "task-create", containerId: "sb", pid: 10 },
  );
  assertEquals(
    decodeEnvelope(
      envelope(
        "/tasks/start",
        "containerd.events.TaskStart",
        TaskStart.encode({ containerId: "sb", pid: 11 }).finish(),
      ),
    ),
    { ...base("/tasks/start"), kind: "task-start", containerId: "sb", pid: 11 },
  );
  assertEquals(
    decodeEnvelope(
      envelope(
        "/tasks/delete",
        "containerd.events.TaskDelete",
        TaskDelete.encode({
          containerId: "sb",
          id: "",
          pid: 12,
          exitStatus: 0,
          exitedAt: EXITED,
        }).finish(),
      ),
    ),
    {
      ...base("/tasks/delete"),
      kind: "task-delete",
      containerId: "sb",
      processId: "",
      pid: 12,
      exitStatus: 0,
      exitedAt: EXITED_TEXT,
    },
  );
});

Deno.test("ContainerCreate and ContainerDelete decode to the container id", () => {
  assertEquals(
    decodeEnvelope(
      envelope(
        "/containers/create",
        "containerd.events.ContainerCreate",
        ContainerCreate.encode({ id: "c1", image: "busybox" }).finish(),
      ),
    ),
    { ...base("/containers/create"), kind: "container-create", id: "c1" },
  );
  assertEquals(
    decodeEnvelope(
      envelope(
        "/containers/delete",
        "containerd.events.ContainerDelete",
        ContainerDelete.encode({ id: "c1" }).finish(),
      ),
    ),
    { ...base("/containers/delete"), kind: "container-delete", id: "c1" },
  );
});

Deno.test("podsandboxd's marker decodes to its nonce", () => {
  const payload = markerPayload("nonce-123");
  assertEquals(payload.typeUrl, MARKER_TYPE_URL);
  assertEquals(
    decodeEnvelope(envelope(MARKER_TOPIC, payload.typeUrl, payload.value)),
    { ...base(MARKER_TOPIC), kind: "marker", nonce: "nonce-123" },
  );
});

Deno.test("an unknown type URL or an envelope without an event is ignored", () => {
  assertEquals(
    decodeEnvelope(
      envelope("/images/create", "containerd.events.ImageCreate", new Uint8Array([10, 1, 97])),
    ),
    { ...base("/images/create"), kind: "ignored", typeUrl: "containerd.events.ImageCreate" },
  );
  assertEquals(
    decodeEnvelope({ timestamp: undefined, namespace: NS, topic: "/x", event: undefined }),
    { namespace: NS, topic: "/x", timestamp: undefined, kind: "ignored", typeUrl: "" },
  );
});

Deno.test("a truncated or garbage payload of a known type is 'malformed', never a throw", () => {
  const full = TaskExit.encode({
    containerId: "sandbox-with-a-long-id",
    id: "sandbox-with-a-long-id",
    pid: 1,
    exitStatus: 3,
    exitedAt: EXITED,
  }).finish();
  const payloads: Array<[string, Uint8Array]> = [
    ["containerd.events.TaskExit", full.subarray(0, full.length - 5)],
    ["containerd.events.TaskExit", new Uint8Array([0x0a, 0x05, 0x61])], // string cut short
    ["containerd.events.TaskCreate", new Uint8Array(11).fill(0xff)], // endless varint
    ["containerd.events.TaskStart", new Uint8Array([0x10])], // tag without value
    ["containerd.events.ContainerDelete", new Uint8Array([0x0a, 0x7f])],
    [MARKER_TYPE_URL, new Uint8Array([0xc3, 0x28])], // invalid UTF-8 nonce
  ];
  for (const [typeUrl, value] of payloads) {
    const event = decodeEnvelope(envelope("/tasks/exit", typeUrl, value));
    assertEquals(event.kind, "malformed", `${typeUrl} ${value}`);
    assert(event.kind === "malformed");
    assertEquals(event.typeUrl, typeUrl);
    assert(event.reason.length > 0);
    assertEquals(event.namespace, NS);
    assertEquals(event.timestamp, PUBLISHED_TEXT);
  }
});
