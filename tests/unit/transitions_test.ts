/**
 * The pure state machine of a sandbox record, without any store.
 */
import {
  containerGeneration,
  discover,
  markDeleted,
  markRunning,
  recordExit,
  type Transition,
} from "../../src/store/transitions.ts";
import type { SandboxExit, SandboxRecord } from "../../src/store/types.ts";
import { assertEquals } from "../harness/assert.ts";

const KEY = { namespace: "k8s.io", id: "sb" };
const T0 = "2026-01-01T00:00:00.000000000Z";
const T1 = "2026-01-01T00:00:01.000000000Z";
const T2 = "2026-01-01T00:00:02.000000000Z";
const T3 = "2026-01-01T00:00:03.000000000Z";

const EXIT_7: Omit<SandboxExit, "recordedAt"> = {
  status: 7,
  exitedAt: "2026-01-01T00:00:00.500000000Z",
  source: "event",
  statusKnown: true,
};
const EXIT_1: Omit<SandboxExit, "recordedAt"> = {
  status: 1,
  exitedAt: "2026-01-01T00:00:05.000000000Z",
  source: "task-status",
  statusKnown: true,
};

/** Applies transitions in order the way the store does: null keeps the current record. */
function run(start: SandboxRecord | null, ...steps: Array<[Transition, string]>) {
  let record = start;
  for (const [step, now] of steps) record = step(record, now) ?? record;
  return record;
}

Deno.test("discover creates a NOTREADY record without an exit, with the description", () => {
  const record = discover(KEY, {
    createdAt: T0,
    labels: { app: "web" },
    pod: { name: "web-0", namespace: "default", uid: "u-1" },
  })(null, T1);
  assertEquals(record, {
    namespace: "k8s.io",
    id: "sb",
    state: "SANDBOX_NOTREADY",
    labels: { app: "web" },
    createdAt: T0,
    pod: { name: "web-0", namespace: "default", uid: "u-1" },
    updatedAt: T1,
  });
});

Deno.test("discover of an unchanged description is a no-op (null); a changed one updates", () => {
  const first = discover(KEY, { labels: { a: "1" } })(null, T0)!;
  assertEquals(discover(KEY, { labels: { a: "1" } })(first, T1), null);
  assertEquals(discover(KEY, {})(first, T1), null);
  const changed = discover(KEY, { labels: { a: "2" } })(first, T1)!;
  assertEquals(changed.labels, { a: "2" });
  assertEquals(changed.updatedAt, T1);
  assertEquals(changed.state, "SANDBOX_NOTREADY");
});

Deno.test("discover never changes the state or the exit of an existing record", () => {
  const exited = run(null, [markRunning(KEY, 42), T0], [recordExit(KEY, EXIT_7), T1])!;
  const next = discover(KEY, { labels: { late: "yes" } })(exited, T2)!;
  assertEquals(next.state, "SANDBOX_NOTREADY");
  assertEquals(next.exit, exited.exit);
  const running = markRunning(KEY, 42)(null, T0)!;
  assertEquals(discover(KEY, { labels: { x: "y" } })(running, T1)!.state, "SANDBOX_READY");
});

Deno.test("markRunning makes a record READY with the pid; repeating it is a no-op", () => {
  const discovered = discover(KEY, {})(null, T0)!;
  const running = markRunning(KEY, 42)(discovered, T1)!;
  assertEquals(running.state, "SANDBOX_READY");
  assertEquals(running.pid, 42);
  assertEquals(running.updatedAt, T1);
  assertEquals(markRunning(KEY, 42)(running, T2), null);
  // A new pid (a recreated task) is recorded.
  assertEquals(markRunning(KEY, 43)(running, T2)!.pid, 43);
});

Deno.test("markRunning without a record creates it READY (start seen before create)", () => {
  const record = markRunning(KEY, 42, { labels: { a: "b" } })(null, T0)!;
  assertEquals(record.state, "SANDBOX_READY");
  assertEquals(record.pid, 42);
  assertEquals(record.labels, { a: "b" });
});

Deno.test("recordExit makes the record NOTREADY with the exit stamped at commit time", () => {
  const running = markRunning(KEY, 42)(null, T0)!;
  const exited = recordExit(KEY, EXIT_7)(running, T1)!;
  assertEquals(exited.state, "SANDBOX_NOTREADY");
  assertEquals(exited.exit, { ...EXIT_7, recordedAt: T1 });
  assertEquals(exited.pid, 42);
  assertEquals(exited.updatedAt, T1);
});

Deno.test("recordExit on an unknown sandbox creates the record with its exit", () => {
  const exited = recordExit(KEY, EXIT_7, { pid: 9 })(null, T0)!;
  assertEquals(exited.state, "SANDBOX_NOTREADY");
  assertEquals(exited.exit?.status, 7);
  assertEquals(exited.pid, 9);
});

Deno.test("the first exit stands: a second recordExit is a no-op, whatever it says", () => {
  const exited = recordExit(KEY, EXIT_7)(markRunning(KEY, 42)(null, T0), T1)!;
  assertEquals(recordExit(KEY, EXIT_1)(exited, T2), null);
  assertEquals(recordExit(KEY, EXIT_7)(exited, T2), null);
  assertEquals(recordExit(KEY, EXIT_1, { labels: { changed: "yes" } })(exited, T2), null);
});

Deno.test("markRunning after an exit never revives the sandbox", () => {
  const exited = run(null, [markRunning(KEY, 42), T0], [recordExit(KEY, EXIT_7), T1])!;
  assertEquals(markRunning(KEY, 42)(exited, T2), null, "a replayed start is a no-op");
  assertEquals(markRunning(KEY, 99)(exited, T2), null, "a late start with a new pid too");
  // A description may still be refreshed, but the state and exit stay.
  const described = markRunning(KEY, 99, { labels: { late: "1" } })(exited, T2)!;
  assertEquals(described.state, "SANDBOX_NOTREADY");
  assertEquals(described.exit, exited.exit);
  assertEquals(described.pid, 42);
  assertEquals(described.labels, { late: "1" });
});

Deno.test("a description's pid never replaces a known pid", () => {
  const running = markRunning(KEY, 42)(null, T0)!;
  const next = discover(KEY, { pid: 77, labels: { a: "b" } })(running, T1)!;
  assertEquals(next.pid, 42);
});

Deno.test("markDeleted stamps deletedAt once, in any state, and is a no-op without a record", () => {
  assertEquals(markDeleted(T1)(null, T1), null);
  const running = markRunning(KEY, 42)(null, T0)!;
  const deleted = markDeleted(T1)(running, T2)!;
  assertEquals(deleted.deletedAt, T1);
  assertEquals(deleted.updatedAt, T2);
  assertEquals(deleted.state, "SANDBOX_READY", "markDeleted only stamps");
  assertEquals(markDeleted(T3)(deleted, T3), null, "the first deletion time stands");
  const exited = recordExit(KEY, EXIT_7)(deleted, T3)!;
  assertEquals(exited.deletedAt, T1);
  assertEquals(exited.exit?.status, 7);
});

Deno.test("transitions never mutate the record they are given", () => {
  const running = markRunning(KEY, 42, { labels: { a: "1" } })(null, T0)!;
  const snapshot = structuredClone(running);
  recordExit(KEY, EXIT_7, { labels: { a: "2" } })(running, T1);
  markDeleted(T1)(running, T1);
  discover(KEY, { labels: { b: "2" } })(running, T1);
  markRunning(KEY, 43)(running, T1);
  assertEquals(running, snapshot);
});

Deno.test("a newer container with the same id starts a fresh record; the old exit and removal stay behind", () => {
  const old = run(
    null,
    [markRunning(KEY, 10, { createdAt: T0 }), T0],
    [recordExit(KEY, EXIT_7), T1],
    [markDeleted(T1), T1],
  )!;
  assertEquals(containerGeneration(old, { createdAt: T2 }), "newer");
  const next = run(old, [markRunning(KEY, 20, { createdAt: T2, labels: { a: "b" } }), T3])!;
  assertEquals(next.state, "SANDBOX_READY");
  assertEquals(next.pid, 20);
  assertEquals(next.createdAt, T2);
  assertEquals(next.exit, undefined);
  assertEquals(next.deletedAt, undefined);
  assertEquals(next.labels, { a: "b" });
});

Deno.test("news about an older container than the record's changes nothing", () => {
  const current = run(null, [markRunning(KEY, 20, { createdAt: T2 }), T2])!;
  assertEquals(containerGeneration(current, { createdAt: T0 }), "older");
  assertEquals(recordExit(KEY, EXIT_7, { createdAt: T0 })(current, T3), null);
  assertEquals(markRunning(KEY, 10, { createdAt: T0 })(current, T3), null);
  assertEquals(discover(KEY, { createdAt: T0 })(current, T3), null);
});

Deno.test("an exit containerd timed before the record's container was created is stale; an agent-timed one is not", () => {
  const current = run(null, [markRunning(KEY, 20, { createdAt: T2 }), T2])!;
  assertEquals(recordExit(KEY, EXIT_7)(current, T3), null, "exited at 00:00:00.5, created at 2");
  const agentTimed = { ...EXIT_7, exitedAtKnown: false, source: "task-missing" as const };
  assertEquals(recordExit(KEY, agentTimed)(current, T3)?.exit?.source, "task-missing");
});

Deno.test("a description without a creation time is about the record's own container", () => {
  const current = run(null, [markRunning(KEY, 20, { createdAt: T2 }), T2])!;
  assertEquals(containerGeneration(current, {}), "same");
  assertEquals(containerGeneration(current, undefined), "same");
  assertEquals(containerGeneration(null, { createdAt: T0 }), "same");
  assertEquals(run(current, [recordExit(KEY, EXIT_1), T3])!.exit?.status, 1);
});
