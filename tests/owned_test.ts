/**
 * The sandboxes the agent owns as containerd's sandbox controller (--sandboxer), against
 * the scripted fake containerd and a fake SandboxRuntime that plays the pause container
 * in it: Create/Start/Stop/Shutdown, exit handling like the reference controller's, and
 * restarts. src/sandboxer/'s real runtime is tested against containerd elsewhere.
 */
import type { SandboxRuntime, StartedSandbox } from "../src/controller/owned.ts";
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnimplementedError,
} from "../src/errors.ts";
import type { OwnedSandbox } from "../src/store/owned.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { key, NS, setup } from "./harness/controller_setup.ts";
import { FakeContainerd } from "./harness/fake_containerd.ts";
import { delay } from "../src/controller/backoff.ts";

const SANDBOXER = "podsandboxd";

/** Runs the pause "container" in the fake containerd, as src/sandboxer does in a real one. */
class FakeRuntime implements SandboxRuntime {
  readonly started: string[] = [];
  readonly shutdowns: string[] = [];
  failStart?: Error;
  constructor(readonly fake: FakeContainerd) {}

  start(sandbox: OwnedSandbox): Promise<StartedSandbox> {
    if (this.failStart) return Promise.reject(this.failStart);
    this.started.push(sandbox.id);
    this.fake.addContainer(sandbox.id, {
      labels: { ...sandbox.labels, "io.podsandboxd.owned": "true" },
    });
    const pid = this.fake.startTask(sandbox.id);
    return Promise.resolve({
      pid,
      createdAt: this.fake.containers.get(sandbox.id)!.createdAt!,
      labels: { oci_runtime_type: sandbox.runtime.name },
    });
  }

  shutdown(sandbox: OwnedSandbox): Promise<void> {
    this.shutdowns.push(sandbox.id);
    if (this.fake.tasks.has(sandbox.id)) {
      if (this.fake.tasks.get(sandbox.id)!.status === "running") {
        this.fake.exitTask(sandbox.id, 137);
      }
      this.fake.ownerDeletesTask(sandbox.id);
    }
    if (this.fake.containers.has(sandbox.id)) this.fake.removeContainer(sandbox.id);
    return Promise.resolve();
  }
}

function createRequest(id: string, overrides: Partial<OwnedSandbox> = {}) {
  return {
    namespace: NS,
    id,
    sandboxer: SANDBOXER,
    options: { typeUrl: "runtime.v1.PodSandboxConfig", value: new Uint8Array([10, 3, 1, 2, 3]) },
    netnsPath: "",
    annotations: { "a": "b" },
    runtime: { name: "io.containerd.runc.v2" },
    labels: { name: `${id}_default_uid_0` },
    extensions: {},
    ...overrides,
  };
}

async function owning(
  prepare?: (fake: FakeContainerd) => void,
  more: { storePath?: string; fake?: FakeContainerd; reap?: "never" | "always" } = {},
) {
  const fake = more.fake ?? new FakeContainerd(NS);
  const runtime = new FakeRuntime(fake);
  const t = await setup(
    { reap: more.reap ?? "never", sandboxer: { name: SANDBOXER, runtime } },
    prepare,
    { fake, storePath: more.storePath },
  );
  const dispose = t[Symbol.asyncDispose];
  return Object.assign(t, {
    runtime,
    async [Symbol.asyncDispose]() {
      await dispose();
      if (!more.fake) fake.close();
    },
  });
}

Deno.test("Create keeps the request; Start runs it READY; Stop kills and returns once the exit is handled", async () => {
  await using t = await owning();
  const c = t.controller;
  await c.createSandbox(SANDBOXER, createRequest("pod"));
  const created = await c.get(key("pod"));
  assertEquals([created.state, created.pid, created.exit], [
    "SANDBOX_NOTREADY",
    undefined,
    undefined,
  ]);
  assert(created.createdAt, "a created sandbox has its Create time");
  assertEquals(t.runtime.started, [], "nothing runs before Start");

  const started = await c.startSandbox(SANDBOXER, key("pod"));
  assertEquals(started.labels, { oci_runtime_type: "io.containerd.runc.v2" });
  const ready = await c.get(key("pod"));
  assertEquals([ready.state, ready.pid, ready.createdAt], [
    "SANDBOX_READY",
    started.pid,
    started.createdAt,
  ]);
  const waiting = c.wait(key("pod"));

  await c.stopSandbox(SANDBOXER, key("pod"), { timeoutSecs: 0 });
  // Stop returned: the exit is recorded and the task was deleted (with kill) before it.
  const stopped = await c.get(key("pod"));
  assertEquals([stopped.state, stopped.exit?.status], ["SANDBOX_NOTREADY", 137]);
  assertEquals(t.fake.tasks.has("pod"), false, "the agent deleted the pause task");
  assertEquals((await waiting).exit.status, 137);
  assertEquals(
    t.fake.callsOf("killTask").map((a) => a[2]),
    [9, 9],
    "Stop's SIGKILL, then the reap's kill before its delete",
  );
  await c.stopSandbox(SANDBOXER, key("pod"), { timeoutSecs: 0 }); // idempotent

  await c.shutdownSandbox(SANDBOXER, key("pod"));
  assertEquals(t.runtime.shutdowns, ["pod"]);
  assertEquals(await t.store.owned.get(key("pod")), null, "forgotten");
  await c.shutdownSandbox(SANDBOXER, key("pod")); // unknown now: fine
  await assertRejects(() => c.startSandbox(SANDBOXER, key("pod")), NotFoundError);
  // The record stays, as for any sandbox: Wait still answers.
  assertEquals((await c.wait(key("pod"))).exit.status, 137);
});

Deno.test("Stop with a timeout sends SIGTERM, then SIGKILL once the timeout passes", async () => {
  await using t = await owning();
  const c = t.controller;
  for (const id of ["polite", "stubborn"]) {
    await c.createSandbox(SANDBOXER, createRequest(id));
    await c.startSandbox(SANDBOXER, key(id));
  }
  await c.stopSandbox(SANDBOXER, key("polite"), { timeoutSecs: 5 });
  assertEquals((await c.get(key("polite"))).exit?.status, 143, "SIGTERM was enough");

  t.fake.ignoresTerm.add("stubborn");
  const started = performance.now();
  await c.stopSandbox(SANDBOXER, key("stubborn"), { timeoutSecs: 1 });
  const took = performance.now() - started;
  assertEquals((await c.get(key("stubborn"))).exit?.status, 137);
  assert(took >= 900, `SIGKILL came after the 1 s timeout (${took} ms)`);
});

Deno.test("an owned sandbox that dies by itself is reaped like the reference does, whatever --reap says", async () => {
  await using t = await owning((fake) => {
    fake.addContainer("observed", { emit: false });
    fake.startTask("observed", { emit: false });
  });
  const c = t.controller;
  await c.createSandbox(SANDBOXER, createRequest("owned"));
  await c.startSandbox(SANDBOXER, key("owned"));
  const waiting = c.wait(key("owned"));
  t.fake.exitTask("owned", 3);
  assertEquals((await waiting).exit.status, 3);
  assertEquals(t.fake.tasks.has("owned"), false, "its task was deleted before Wait answered");
  assertEquals(t.fake.callsOf("deleteTask"), [[NS, "owned"]]);
  t.fake.exitTask("observed", 4);
  assertEquals((await c.wait(key("observed"))).exit.status, 4);
  await t.settle();
  assertEquals(
    t.fake.tasks.get("observed")?.status,
    "stopped",
    "observed sandboxes are not reaped",
  );
  assertEquals(t.fake.callsOf("deleteTask").length, 1);
});

Deno.test("Create twice: the same request is fine, a different one is ALREADY_EXISTS", async () => {
  await using t = await owning();
  const c = t.controller;
  await c.createSandbox(SANDBOXER, createRequest("pod"));
  await c.createSandbox(SANDBOXER, createRequest("pod"));
  const err = await assertRejects(
    () => c.createSandbox(SANDBOXER, createRequest("pod", { netnsPath: "/var/run/netns/x" })),
    AlreadyExistsError,
  );
  assertMatch(err.message, /created already .* different configuration; Shutdown it first/);
});

Deno.test("lifecycle calls name this agent's sandboxer; other names and unknown ids are refused clearly", async () => {
  await using t = await owning();
  const c = t.controller;
  const wrong = await assertRejects(
    () => c.createSandbox("other", createRequest("pod", { sandboxer: "other" })),
    InvalidArgumentError,
  );
  assertMatch(
    wrong.message,
    /for sandboxer "other", but this podsandboxd is sandboxer "podsandboxd"/,
  );
  const unknown = await assertRejects(() => c.startSandbox(SANDBOXER, key("nope")), NotFoundError);
  assertMatch(unknown.message, /not created through sandboxer podsandboxd \(Create comes first\)/);
  await c.stopSandbox(SANDBOXER, key("nope")).then(
    () => assert(false, "Stop of an unknown sandbox"),
    (err) => assert(err instanceof NotFoundError),
  );

  await using observer = await setup();
  const off = await assertRejects(
    () => observer.controller.createSandbox(SANDBOXER, createRequest("pod")),
    UnimplementedError,
  );
  assertMatch(off.message, /only observes sandboxes \(serve --sandboxer NAME/);
});

Deno.test("Start twice answers the running sandbox; Start after its exit is FAILED_PRECONDITION", async () => {
  await using t = await owning();
  const c = t.controller;
  await c.createSandbox(SANDBOXER, createRequest("pod"));
  const first = await c.startSandbox(SANDBOXER, key("pod"));
  const again = await c.startSandbox(SANDBOXER, key("pod"));
  assertEquals([again.pid, again.createdAt], [first.pid, first.createdAt]);
  assertEquals(t.runtime.started, ["pod"]);
  await c.stopSandbox(SANDBOXER, key("pod"));
  await assertRejects(() => c.startSandbox(SANDBOXER, key("pod")), FailedPreconditionError);
});

Deno.test("a failed Start leaves the sandbox created and not running; its error is the answer", async () => {
  await using t = await owning();
  const c = t.controller;
  await c.createSandbox(SANDBOXER, createRequest("pod"));
  t.runtime.failStart = new FailedPreconditionError(
    "pause image docker.io/local/pause:latest not found",
  );
  await assertRejects(() => c.startSandbox(SANDBOXER, key("pod")), FailedPreconditionError);
  assertEquals((await c.get(key("pod"))).state, "SANDBOX_NOTREADY");
  t.runtime.failStart = undefined;
  assertEquals((await c.startSandbox(SANDBOXER, key("pod"))).pid > 0, true, "a retry runs");
});

Deno.test("Shutdown of a sandbox created but never started ends its waiters with NOT_FOUND", async () => {
  await using t = await owning();
  const c = t.controller;
  await c.createSandbox(SANDBOXER, createRequest("pod"));
  const waiting = c.wait(key("pod"));
  await delay(20);
  await c.shutdownSandbox(SANDBOXER, key("pod"));
  const err = await assertRejects(() => waiting, NotFoundError);
  assertMatch(err.message, /shut down before it ran/);
  await assertRejects(() => c.get(key("pod")), NotFoundError);
});

Deno.test("owned sandboxes survive an agent restart: Start after it, and exits after it, are handled", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-owned-" });
  const fake = new FakeContainerd(NS);
  try {
    {
      await using t = await owning(undefined, { storePath: `${dir}/s.kv`, fake });
      await t.controller.createSandbox(SANDBOXER, createRequest("later"));
      await t.controller.createSandbox(SANDBOXER, createRequest("running"));
      await t.controller.startSandbox(SANDBOXER, key("running"));
    }
    await using t = await owning(undefined, { storePath: `${dir}/s.kv`, fake });
    // Its exit after the restart is reaped: the restarted agent knows it owns it.
    fake.exitTask("running", 5);
    assertEquals((await t.controller.wait(key("running"))).exit.status, 5);
    assertEquals(fake.tasks.has("running"), false);
    // The Create kept before the restart is what Start runs.
    await t.controller.startSandbox(SANDBOXER, key("later"));
    assertEquals((await t.controller.get(key("later"))).state, "SANDBOX_READY");
  } finally {
    fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a Create with annotations beyond a KV value is kept whole; one beyond the limit is refused", async () => {
  await using t = await owning();
  const big = { big: "x".repeat(200 * 1024) };
  await t.controller.createSandbox(SANDBOXER, createRequest("big", { annotations: big }));
  const kept = await t.store.owned.get(key("big"));
  assertEquals(kept?.annotations.big.length, 200 * 1024);
  assertEquals([...kept!.options!.value], [10, 3, 1, 2, 3], "bytes survive the JSON encoding");
  const err = await assertRejects(
    () =>
      t.controller.createSandbox(
        SANDBOXER,
        createRequest("huge", { annotations: { huge: "x".repeat(500 * 1024) } }),
      ),
    InvalidArgumentError,
  );
  assertMatch(err.message, /the Create request of sandbox huge is \d+ bytes/);
  assertEquals(await t.store.owned.get(key("huge")), null);
});

Deno.test("a Create whose Any values are Node Buffers (as grpc-js hands them) keeps their bytes", async () => {
  await using t = await owning();
  const { Buffer } = await import("node:buffer");
  const pooled = Buffer.from([9, 8, 7, 6]);
  await t.controller.createSandbox(
    SANDBOXER,
    createRequest("buf", { options: { typeUrl: "runtime.v1.PodSandboxConfig", value: pooled } }),
  );
  const kept = await t.store.owned.get(key("buf"));
  assert(kept!.options!.value instanceof Uint8Array);
  assertEquals([...kept!.options!.value], [9, 8, 7, 6]);
});
