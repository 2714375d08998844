/**
 * The CLI's JSON form of a record.
 */
import { sandboxJson, sandboxTable, sandboxText } from "../../src/cli/output.ts";
import {
  ExitSource,
  type Sandbox,
  SandboxState,
} from "../../src/gen/podsandboxd/v1/podsandboxd.ts";
import { assertEquals, assertMatch } from "../harness/assert.ts";

function sandbox(overrides: Partial<Sandbox> = {}): Sandbox {
  return {
    namespace: "k8s.io",
    id: "sb",
    pid: 0,
    state: SandboxState.SANDBOX_READY,
    createdAt: undefined,
    exitedAt: undefined,
    exitStatus: undefined,
    exitStatusKnown: false,
    exitTimeKnown: false,
    exitSource: ExitSource.EXIT_SOURCE_UNSPECIFIED,
    exitReason: "",
    labels: {},
    deletedAt: undefined,
    updatedAt: undefined,
    podName: "",
    podNamespace: "",
    podUid: "",
    ...overrides,
  };
}

Deno.test("sandboxJson omits every absent field", () => {
  assertEquals(sandboxJson(sandbox()), { id: "sb", namespace: "k8s.io", state: "SANDBOX_READY" });
  // Zero timestamps (proto3 defaults) and Go's zero time are absent too.
  assertEquals(
    sandboxJson(sandbox({
      createdAt: { seconds: 0, nanos: 0 },
      deletedAt: { seconds: -62135596800, nanos: 0 },
    })),
    { id: "sb", namespace: "k8s.io", state: "SANDBOX_READY" },
  );
});

Deno.test("sandboxJson keeps an exit status of 0 with how it was learned", () => {
  const json = sandboxJson(sandbox({
    state: SandboxState.SANDBOX_NOTREADY,
    pid: 42,
    exitStatus: 0,
    exitStatusKnown: true,
    exitTimeKnown: true,
    exitSource: ExitSource.EXIT_SOURCE_EVENT,
    exitedAt: { seconds: 1795777137, nanos: 5 },
  }));
  assertEquals(json, {
    id: "sb",
    namespace: "k8s.io",
    state: "SANDBOX_NOTREADY",
    pid: 42,
    exitedAt: "2026-11-27T10:58:57.000000005Z",
    exitStatus: 0,
    exitStatusKnown: true,
    exitTimeKnown: true,
    exitSource: "event",
  });
});

Deno.test("sandboxJson carries an unknown status with its reason, pod and labels", () => {
  assertEquals(
    sandboxJson(sandbox({
      state: SandboxState.SANDBOX_NOTREADY,
      exitStatus: 255,
      exitStatusKnown: false,
      exitSource: ExitSource.EXIT_SOURCE_TASK_MISSING,
      exitReason: "the task was gone before its exit was seen",
      createdAt: { seconds: 1795777000, nanos: 0 },
      deletedAt: { seconds: 1795777200, nanos: 0 },
      podName: "web-0",
      podUid: "u-1",
      labels: { app: "web" },
    })),
    {
      id: "sb",
      namespace: "k8s.io",
      state: "SANDBOX_NOTREADY",
      createdAt: "2026-11-27T10:56:40.000000000Z",
      exitStatus: 255,
      exitStatusKnown: false,
      exitTimeKnown: false,
      exitSource: "task-missing",
      exitReason: "the task was gone before its exit was seen",
      deletedAt: "2026-11-27T11:00:00.000000000Z",
      pod: { name: "web-0", uid: "u-1" },
      labels: { app: "web" },
    },
  );
});

Deno.test("sandboxJson marks states and exit sources it does not know", () => {
  const json = sandboxJson(sandbox({
    state: SandboxState.SANDBOX_STATE_UNSPECIFIED,
    exitStatus: 1,
    exitSource: 42 as ExitSource,
  }));
  assertEquals(json.state, "SANDBOX_UNKNOWN");
  assertEquals(json.exitSource, "unknown");
  assertEquals(sandboxJson(sandbox({ state: 7 as SandboxState })).state, "SANDBOX_UNKNOWN");
});

Deno.test("text and table forms show an unknown status as such and a 0 as 0", () => {
  const unknown = sandbox({
    id: "lost",
    exitStatus: 255,
    exitStatusKnown: false,
    exitSource: ExitSource.EXIT_SOURCE_TASK_MISSING,
    exitReason: "gone",
  });
  const zero = sandbox({ id: "ok", exitStatus: 0, exitStatusKnown: true, pid: 7 });
  assertMatch(sandboxText(unknown), /^exit status: +255 \(status not known: gone\)$/m);
  assertMatch(sandboxText(zero), /^exit status: +0$/m);
  const table = sandboxTable([unknown, zero, sandbox({ id: "running" })]).split("\n");
  assertMatch(table[0], /^ID +STATE +PID +EXIT +EXITED AT$/);
  assertMatch(table[1], /^lost +SANDBOX_READY +- +255\? +-$/);
  assertMatch(table[2], /^ok +SANDBOX_READY +7 +0 +-$/);
  assertMatch(table[3], /^running +SANDBOX_READY +- +- +-$/);
});

Deno.test("the owning sandboxer (containerd 1.7+'s sandbox store) is shown when known, omitted otherwise", () => {
  const owned = sandbox({ id: "pod", sandboxer: "podsandbox" });
  assertEquals(sandboxJson(owned).sandboxer, "podsandbox");
  assertMatch(sandboxText(owned), /^sandboxer: +podsandbox$/m);
  assertEquals("sandboxer" in sandboxJson(sandbox()), false);
  assertEquals(/sandboxer/.test(sandboxText(sandbox())), false);
});

Deno.test("a known status with a time that is not the exit's own says so in text and JSON", () => {
  const late = sandbox({
    state: SandboxState.SANDBOX_NOTREADY,
    exitStatus: 9,
    exitStatusKnown: true,
    exitTimeKnown: false,
    exitSource: ExitSource.EXIT_SOURCE_EVENT,
    exitReason: "containerd's TaskExit carried no usable exit time",
    exitedAt: { seconds: 1795777137, nanos: 0 },
  });
  assertMatch(
    sandboxText(late),
    /^exited: +2026-11-27T10:58:57.000000000Z \(when the agent learned of it\)$/m,
  );
  assertMatch(sandboxText(late), /^exit status: +9$/m);
  assertEquals(sandboxJson(late).exitTimeKnown, false);
  assertEquals(sandboxJson(late).exitReason, "containerd's TaskExit carried no usable exit time");
});
