/**
 * The controller against a scripted fake containerd and a real (in-memory) Deno KV store.
 */
import { Controller } from "../src/controller/controller.ts";
import {
  CancelledError,
  FailedPreconditionError,
  NotFoundError,
  UnavailableError,
} from "../src/errors.ts";
import { KvSandboxStore } from "../src/store/kv_store.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { instantFromDate } from "../src/time.ts";
import { FakeContainerd } from "./harness/fake_containerd.ts";
import { FILTERS, key, NS, setup } from "./harness/controller_setup.ts";
import { eventually } from "./harness/process.ts";

Deno.test("start-up records running sandboxes as READY and stopped ones with containerd's exit", async () => {
  await using t = await setup({}, (fake) => {
    fake.addContainer("running", { emit: false });
    fake.startTask("running", { emit: false });
    fake.addContainer("stopped", { emit: false, createdAt: new Date("2026-01-02T03:00:00Z") });
    fake.startTask("stopped", { emit: false });
    fake.exitTask("stopped", 3, { emit: false, at: new Date("2026-01-02T03:04:05.678Z") });
    fake.addContainer("plain", { sandbox: false, emit: false });
    fake.startTask("plain", { emit: false });
  });
  const running = await t.controller.get(key("running"));
  assertEquals(running.state, "SANDBOX_READY");
  assertEquals(running.pid, t.fake.tasks.get("running")!.pid);
  const stopped = await t.controller.get(key("stopped"));
  assertEquals(stopped.state, "SANDBOX_NOTREADY");
  assertEquals(stopped.exit?.status, 3);
  assertEquals(stopped.exit?.exitedAt, "2026-01-02T03:04:05.678000000Z");
  assertEquals(stopped.exit?.source, "task-status");
  await assertRejects(() => t.controller.get(key("plain")), NotFoundError);
});

Deno.test("a TaskExit of a sandbox wakes every waiter with its status", async () => {
  await using t = await setup();
  t.fake.addContainer("sb");
  t.fake.startTask("sb");
  await t.settle();
  assertEquals((await t.controller.get(key("sb"))).state, "SANDBOX_READY");
  const waits = Array.from({ length: 5 }, () => t.controller.wait(key("sb")));
  await t.settle();
  assertEquals(t.controller.waiterCount, 5);
  const exitedAt = t.fake.exitTask("sb", 7);
  for (const record of await Promise.all(waits)) {
    assertEquals(record.exit.status, 7);
    assertEquals(record.exit.exitedAt, exitedAt);
    assertEquals(record.exit.source, "event");
  }
  assertEquals(t.controller.waiterCount, 0);
});

Deno.test("an exit status of 0 is a real status, not unknown", async () => {
  await using t = await setup();
  t.fake.addContainer("zero");
  t.fake.startTask("zero");
  await t.settle();
  t.fake.exitTask("zero", 0);
  const record = await t.controller.wait(key("zero"));
  assertEquals(record.exit.status, 0);
  assertEquals(record.exit.statusKnown, true);
});

Deno.test("exec exits and non-sandbox containers do not touch sandbox records", async () => {
  await using t = await setup();
  t.fake.addContainer("sb");
  t.fake.startTask("sb");
  t.fake.addContainer("plain", { sandbox: false });
  t.fake.startTask("plain");
  t.fake.emit({
    kind: "task-exit",
    containerId: "sb",
    processId: "exec-1",
    pid: 5,
    exitStatus: 3,
    exitedAt: "2026-01-01T00:00:00.000000000Z",
  });
  t.fake.exitTask("plain", 1);
  await t.settle();
  const sb = await t.controller.get(key("sb"));
  assertEquals(sb.state, "SANDBOX_READY");
  assertEquals(sb.exit, undefined);
  await assertRejects(() => t.controller.get(key("plain")), NotFoundError);
});

Deno.test("a later, contradicting TaskExit never overwrites the recorded exit", async () => {
  await using t = await setup();
  t.fake.addContainer("sb");
  t.fake.startTask("sb");
  await t.settle();
  const first = t.fake.exitTask("sb", 7);
  await t.controller.wait(key("sb"));
  t.fake.emit({
    kind: "task-exit",
    containerId: "sb",
    processId: "sb",
    pid: 1,
    exitStatus: 1,
    exitedAt: "2030-01-01T00:00:00.000000000Z",
  });
  t.fake.emit({ kind: "task-start", containerId: "sb", pid: 99 });
  await t.settle();
  const record = await t.controller.get(key("sb"));
  assertEquals(record.exit?.status, 7);
  assertEquals(record.exit?.exitedAt, first);
  assertEquals(record.state, "SANDBOX_NOTREADY", "a late start does not revive an exited sandbox");
});

Deno.test("a TaskExit that arrives before its TaskStart still stands", async () => {
  await using t = await setup();
  t.fake.addContainer("sb");
  t.fake.emit({
    kind: "task-exit",
    containerId: "sb",
    processId: "sb",
    pid: 42,
    exitStatus: 2,
    exitedAt: instantFromDate(new Date()),
  });
  t.fake.emit({ kind: "task-start", containerId: "sb", pid: 42 });
  await t.settle();
  const record = await t.controller.get(key("sb"));
  assertEquals(record.exit?.status, 2);
  assertEquals(record.state, "SANDBOX_NOTREADY");
});

Deno.test("a TaskExit without a usable exit time keeps containerd's status; its time is marked as the agent's", async () => {
  const now = new Date("2026-05-05T05:05:05.000Z");
  await using t = await setup({ now: () => now });
  t.fake.addContainer("sb", { createdAt: new Date("2026-05-05T05:00:00.000Z") });
  await t.settle();
  t.fake.emit({ kind: "task-exit", containerId: "sb", processId: "sb", pid: 42, exitStatus: 9 });
  const record = await t.controller.wait(key("sb"));
  assertEquals(record.exit.status, 9, "containerd's status stands");
  assertEquals(record.exit.statusKnown, true);
  assertEquals(record.exit.exitedAtKnown, false);
  assertEquals(record.exit.source, "event");
  assertMatch(record.exit.reason ?? "", /no usable exit time/);
  assertEquals(record.exit.exitedAt, "2026-05-05T05:05:05.000000000Z");
});

Deno.test("reap=never makes no Kill or Delete call, even when the owner deletes the task", async () => {
  await using t = await setup({ reap: "never" });
  t.fake.addContainer("sb");
  t.fake.startTask("sb");
  await t.settle();
  t.fake.exitTask("sb", 137);
  t.fake.ownerDeletesTask("sb");
  assertEquals((await t.controller.wait(key("sb"))).exit.status, 137);
  await t.settle();
  assertEquals(t.fake.callsOf("killTask").length, 0);
  assertEquals(t.fake.callsOf("deleteTask").length, 0);
});

Deno.test("reap=always deletes the task with kill before waiters wake", async () => {
  await using t = await setup({ reap: "always" });
  t.fake.addContainer("sb");
  t.fake.startTask("sb");
  await t.settle();
  const waiting = t.controller.wait(key("sb"));
  t.fake.exitTask("sb", 137);
  assertEquals((await waiting).exit.status, 137);
  assertEquals(t.fake.tasks.has("sb"), false, "the task is gone when the waiter wakes");
  assertEquals(t.fake.callsOf("killTask"), [[NS, "sb", 9, true]]);
  assertEquals(t.fake.callsOf("deleteTask"), [[NS, "sb"]]);
});

Deno.test("reap=always: a task already gone (NotFound) and an already-finished kill are fine", async () => {
  await using t = await setup({ reap: "always" });
  t.fake.addContainer("gone");
  t.fake.startTask("gone");
  await t.settle();
  t.fake.exitTask("gone", 1);
  t.fake.ownerDeletesTask("gone", { emit: false });
  assertEquals((await t.controller.wait(key("gone"))).exit.status, 1);
  t.fake.addContainer("finished");
  t.fake.startTask("finished");
  await t.settle();
  t.fake.failNext("killTask", new FailedPreconditionError("process already finished"));
  t.fake.exitTask("finished", 2);
  assertEquals((await t.controller.wait(key("finished"))).exit.status, 2);
  assertEquals(t.fake.tasks.has("finished"), false);
});

Deno.test("reap=always: a failing delete is retried with backoff while other sandboxes go on", async () => {
  await using t = await setup({
    reap: "always",
    retryBackoff: { initialMs: 200, maxMs: 200, jitter: 0 },
  });
  t.fake.addContainer("flaky");
  t.fake.startTask("flaky");
  t.fake.addContainer("fine");
  t.fake.startTask("fine");
  await t.settle();
  t.fake.failNextFor(
    "deleteTask",
    "flaky",
    new UnavailableError("ttrpc: closed"),
    new UnavailableError("ttrpc: closed"),
    new UnavailableError("ttrpc: closed"),
  );
  const flaky = t.controller.wait(key("flaky"));
  t.fake.exitTask("flaky", 137);
  await eventually("the first delete", () => t.fake.callsOf("deleteTask").length >= 1);
  // That delete failed; flaky is not recorded yet (waiters wake only after the delete).
  assertEquals((await t.controller.get(key("flaky"))).exit, undefined);
  t.fake.exitTask("fine", 0);
  assertEquals((await t.controller.wait(key("fine"))).exit.status, 0, "not stalled behind flaky");
  assertEquals((await flaky).exit.status, 137);
  assertEquals(t.fake.callsOf("deleteTask").filter((c) => c[1] === "flaky").length, 4);
});

Deno.test("wait: abort frees the waiter; unknown ids are NotFound; close releases with UNAVAILABLE", async () => {
  await using t = await setup();
  t.fake.addContainer("sb");
  t.fake.startTask("sb");
  await t.settle();
  await assertRejects(() => t.controller.wait(key("nope")), NotFoundError);
  const abort = new AbortController();
  const waiting = t.controller.wait(key("sb"), { signal: abort.signal });
  await t.settle();
  assertEquals(t.controller.waiterCount, 1);
  abort.abort(new CancelledError("caller gave up"));
  await assertRejects(() => waiting, CancelledError);
  assertEquals(t.controller.waiterCount, 0);
  const pending = t.controller.wait(key("sb"));
  await t.settle();
  t.controller.close();
  const err = await assertRejects(() => pending, UnavailableError);
  assert(/shutting down/.test(err.message));
});

Deno.test("container delete keeps the record and marks it; a missed exit becomes an honest unknown", async () => {
  await using t = await setup();
  t.fake.addContainer("sb");
  t.fake.startTask("sb");
  await t.settle();
  t.fake.exitTask("sb", 7);
  t.fake.removeContainer("sb");
  await t.settle();
  const kept = await t.controller.get(key("sb"));
  assertEquals(kept.exit?.status, 7);
  assert(kept.deletedAt);
  t.fake.addContainer("lost");
  t.fake.startTask("lost");
  await t.settle();
  t.fake.removeContainer("lost"); // its exit was never published
  const lost = await t.controller.wait(key("lost"));
  assertEquals(lost.exit.status, 255);
  assertEquals(lost.exit.statusKnown, false);
  assertEquals(lost.exit.source, "task-missing");
});

Deno.test("after a lost stream the resync records what happened meanwhile, from containerd's lists", async () => {
  await using t = await setup();
  t.fake.addContainer("stopped-meanwhile");
  t.fake.startTask("stopped-meanwhile");
  t.fake.addContainer("deleted-meanwhile");
  t.fake.startTask("deleted-meanwhile");
  await t.settle();
  t.fake.down();
  await t.settle();
  assertEquals(t.controller.status.state, "disconnected");
  t.fake.exitTask("stopped-meanwhile", 9, { emit: false });
  t.fake.exitTask("deleted-meanwhile", 1, { emit: false });
  t.fake.ownerDeletesTask("deleted-meanwhile", { emit: false });
  t.fake.up();
  const stopped = await t.controller.wait(key("stopped-meanwhile"));
  assertEquals(stopped.exit.status, 9, "containerd still holds this status");
  assertEquals(stopped.exit.source, "task-status");
  const deleted = await t.controller.wait(key("deleted-meanwhile"));
  assertEquals(deleted.exit.status, 255, "the status is gone: never invent one");
  assertEquals(deleted.exit.statusKnown, false);
  await eventually(
    "the controller to report connected",
    () => t.controller.status.state === "connected",
  );
});

Deno.test("a young container without a task is starting, not dead; its TaskCreate makes it READY", async () => {
  await using t = await setup({}, (fake) => fake.addContainer("young", { emit: false }));
  const young = await t.controller.get(key("young"));
  assertEquals(young.state, "SANDBOX_NOTREADY");
  assertEquals(young.exit, undefined);
  t.fake.startTask("young");
  await t.settle();
  assertEquals((await t.controller.get(key("young"))).state, "SANDBOX_READY");
});

Deno.test("a marker publish lost to the subscription race is published again", async () => {
  await using t = await setup({}, (fake) => {
    fake.dropPublishes = 2;
    fake.addContainer("sb", { emit: false });
    fake.startTask("sb", { emit: false });
  });
  assert(t.fake.callsOf("publish").length >= 4, "two markers, the first one after two retries");
  assertEquals((await t.controller.get(key("sb"))).state, "SANDBOX_READY");
});

Deno.test("reap=always: an exit whose delete keeps failing survives an agent restart and is resumed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-ctl-" });
  const path = `${dir}/state.kv`;
  const fake = new FakeContainerd(NS);
  fake.addContainer("stuck", { emit: false });
  fake.startTask("stuck", { emit: false });
  const options = {
    namespace: NS,
    filters: FILTERS,
    reap: "always" as const,
    resyncIntervalMs: 0,
    retryBackoff: { initialMs: 5, maxMs: 20 },
    reconnectBackoff: { initialMs: 5, maxMs: 20 },
  };
  try {
    // First run: every delete fails; the exit stays pending.
    {
      const store = await KvSandboxStore.open(path);
      const controller = new Controller(fake, store, options);
      const stop = new AbortController();
      const running = controller.run(stop.signal);
      await controller.firstOutcome();
      fake.failNextFor(
        "deleteTask",
        "stuck",
        ...Array(1000).fill(new UnavailableError("ttrpc: closed")),
      );
      fake.exitTask("stuck", 137);
      await eventually("a few failed deletes", () => fake.callsOf("deleteTask").length >= 3);
      const pending = await store.listPendingExits();
      assertEquals(pending.map((p) => [p.key.id, p.exit.status]), [["stuck", 137]]);
      assert(pending[0].attempts >= 2, "failed attempts are counted durably");
      assertEquals((await store.get(key("stuck")))?.exit, undefined);
      controller.close();
      stop.abort();
      await running;
      store.close();
    }
    // containerd's TaskExit is not re-sent; only the store remembers the exit.
    const remaining = fake.callsOf("deleteTask").length;
    // Second run: deletes work again; the pending exit is resumed and recorded.
    const store = await KvSandboxStore.open(path);
    const f2 = new FakeContainerd(NS);
    f2.addContainer("stuck", { emit: false });
    f2.tasks.set("stuck", { ...fake.tasks.get("stuck")! });
    const controller = new Controller(f2, store, options);
    const stop = new AbortController();
    const running = controller.run(stop.signal);
    try {
      const record = await controller.wait(key("stuck"));
      assertEquals(record.exit.status, 137);
      assertEquals(record.exit.source, "event", "the original event's exit, not a re-listing");
      assertEquals(f2.callsOf("deleteTask"), [[NS, "stuck"]]);
      assertEquals(await store.listPendingExits(), []);
      assert(remaining >= 3);
    } finally {
      controller.close();
      stop.abort();
      await running;
      store.close();
    }
  } finally {
    fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});
