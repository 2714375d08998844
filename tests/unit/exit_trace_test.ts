/**
 * The exit trace (src/trace/exit_trace.ts): per exit, the first stamp of each stage, the
 * source whose commit recorded it and that commit's group, written out one line per
 * recorded exit — when flushed, or early when the buffer is full.
 */
import type { ContainerdEvent } from "../../src/containerd/types.ts";
import { EXIT_TRACE_ENV, ExitTrace, type ExitTraceLine } from "../../src/trace/exit_trace.ts";
import { assert, assertEquals } from "../harness/assert.ts";

const K = "k8s.io/sb1";

function traced(max?: number) {
  const lines: ExitTraceLine[] = [];
  return { lines, trace: new ExitTrace({ max, quietMs: 0, write: (l) => lines.push(l) }) };
}

function taskExit(id: string, processId = id): ContainerdEvent {
  return {
    kind: "task-exit",
    namespace: "k8s.io",
    topic: "/tasks/exit",
    containerId: id,
    processId,
    pid: 42,
    exitStatus: 137,
    exitedAt: "2026-01-01T00:00:00.000000001Z",
  };
}

Deno.test("a recorded exit is one line: its stages as ms after its first stamp, the source that won, its group", () => {
  const { lines, trace } = traced();
  trace.eventReceived(taskExit("sb1"), 1000, 1001);
  trace.stage(K, "event", "dispatched", 1001.5);
  trace.stage(K, "event", "job", 1002);
  trace.stage(K, "event", "commit", 1002.25);
  trace.group([K, "k8s.io/other"], 1003, 1007);
  trace.recorded(K, "event", 1008);
  trace.notified(K, 1008.5);
  trace.answered(K, 1009);
  trace.answered(K, 1010);
  trace.flush();
  assertEquals(lines, [{
    key: K,
    won: "event",
    t0: 1000,
    ms: {
      "event.received": 0,
      "event.decoded": 1,
      "event.dispatched": 1.5,
      "event.job": 2,
      "event.commit": 2.25,
      "event.committed": 8,
      "group.start": 3,
      "group.end": 7,
      notified: 8.5,
      answered: 9,
    },
    groupSize: 2,
    answers: 2,
  }]);
});

Deno.test("the first stamp of a stage stands, and the losing source's stages are kept beside the winner's", () => {
  const { lines, trace } = traced();
  trace.stage(K, "shim", "received", 10);
  trace.stage(K, "shim", "received", 11);
  trace.stage(K, "shim", "commit", 12);
  trace.group([K], 12.5, 13);
  trace.recorded(K, "shim", 14);
  // The TaskExit arrives later; its commit is a no-op, in a later group.
  trace.eventReceived(taskExit("sb1"), 15, 15.5);
  trace.stage(K, "event", "commit", 16);
  trace.group([K], 16, 17);
  trace.stage(K, "event", "committed", 18);
  trace.recorded(K, "event", 19);
  trace.flush();
  assertEquals(lines.length, 1);
  const [line] = lines;
  assertEquals([line.won, line.t0, line.groupSize], ["shim", 10, 1]);
  assertEquals(line.ms["shim.received"], 0);
  assertEquals([line.ms["group.start"], line.ms["group.end"]], [2.5, 3], "the shim's group");
  assertEquals([line.ms["event.received"], line.ms["event.committed"]], [5, 8]);
});

Deno.test("only init processes' TaskExits are traced, and traces without a recorded exit are dropped", () => {
  const { lines, trace } = traced();
  trace.eventReceived(taskExit("sb1", "exec-1"), 1, 2);
  trace.eventReceived(
    { ...taskExit("sb2"), kind: "container-delete", id: "sb2" } as ContainerdEvent,
    1,
    2,
  );
  assertEquals(trace.size, 0);
  trace.eventReceived(taskExit("sb3"), 1, 2); // a container that is no sandbox: never recorded
  trace.notified("k8s.io/sb4");
  trace.answered("k8s.io/sb4");
  assertEquals(trace.size, 1);
  trace.flush();
  assertEquals([lines.length, trace.size], [0, 0]);
});

Deno.test("a full buffer is written out before the next exit is traced", () => {
  const { lines, trace } = traced(2);
  for (const id of ["a", "b"]) {
    trace.stage(`ns/${id}`, "event", "received", 1);
    trace.recorded(`ns/${id}`, "event", 2);
  }
  assertEquals(lines.length, 0);
  trace.stage("ns/c", "event", "received", 3);
  assertEquals(lines.map((l) => l.key), ["ns/a", "ns/b"]);
  assertEquals(trace.size, 1);
});

Deno.test("traces are written once nothing was stamped for the quiet time", async () => {
  const lines: ExitTraceLine[] = [];
  const trace = new ExitTrace({ quietMs: 50, write: (l) => lines.push(l) });
  trace.stage(K, "shim", "received");
  trace.recorded(K, "shim");
  await new Promise((r) => setTimeout(r, 30));
  trace.answered(K); // still busy: the quiet time starts again
  await new Promise((r) => setTimeout(r, 30));
  assertEquals(lines.length, 0);
  await new Promise((r) => setTimeout(r, 60));
  assertEquals(lines.map((l) => [l.key, l.answers]), [[K, 1]]);
  assertEquals(trace.size, 0);
});

Deno.test(`tracing is on only with ${EXIT_TRACE_ENV}=1`, () => {
  const env = (value?: string) => (name: string) => name === EXIT_TRACE_ENV ? value : undefined;
  assert(ExitTrace.fromEnv(env("1")) instanceof ExitTrace);
  assertEquals(ExitTrace.fromEnv(env()), undefined);
  assertEquals(ExitTrace.fromEnv(env("0")), undefined);
});
