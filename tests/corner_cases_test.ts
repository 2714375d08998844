/**
 * Wrong answers found by a review of the exit path, each reproduced with the scripted
 * fake containerd: id reuse, inferences without evidence, exits dropped at shutdown,
 * sandboxes not yet in the store, namespaces no longer followed, classification under
 * event lag, and backoff holding a sandbox's queue through an outage.
 */
import { delay } from "../src/controller/backoff.ts";
import { FailedPreconditionError, NotFoundError, UnavailableError } from "../src/errors.ts";
import { KvSandboxStore } from "../src/store/kv_store.ts";
import { instantFromDate } from "../src/time.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { key, NS, setup } from "./harness/controller_setup.ts";
import { FakeContainerd } from "./harness/fake_containerd.ts";
import { eventually } from "./harness/process.ts";

/** "answered" if the promise settles within `ms`, else "blocked" (it keeps running). */
async function answeredWithin(promise: Promise<unknown>, ms: number) {
  return await Promise.race([
    promise.then(() => "answered", () => "answered"),
    delay(ms).then(() => "blocked"),
  ]);
}

// ---- 1. one record per container ----------------------------------------------------

Deno.test("a reused id: the new container gets its own record and the old exit never answers for it", async () => {
  await using t = await setup({ retentionMs: 200 });
  t.fake.addContainer("web", { createdAt: new Date(Date.now() - 60_000) });
  t.fake.startTask("web");
  await t.settle();
  const oldExit = t.fake.exitTask("web", 7);
  t.fake.removeContainer("web");
  assertEquals((await t.controller.wait(key("web"))).exit.status, 7);
  await t.settle();
  assert((await t.controller.get(key("web"))).deletedAt, "the old container's removal is noted");

  const watching = new AbortController();
  const changes: Array<[string, boolean]> = [];
  const watched = (async () => {
    for await (const c of t.controller.watch({ namespace: NS, signal: watching.signal })) {
      changes.push([c.record.exit ? `exit ${c.record.exit.status}` : c.record.state, !!c.removed]);
    }
  })();
  t.fake.addContainer("web");
  const pid = t.fake.startTask("web");
  await t.settle();
  watching.abort();
  await watched;
  assertEquals(changes[0], ["exit 7", true], "watchers see the old record go");
  assertEquals(changes.at(-1), ["SANDBOX_READY", false], "then the new one");
  const fresh = await t.controller.get(key("web"));
  assertEquals(fresh.state, "SANDBOX_READY");
  assertEquals(fresh.pid, pid);
  assertEquals(fresh.exit, undefined, "the old container's exit 7 is not the new one's");
  assertEquals(fresh.deletedAt, undefined, "nor is its removal");
  assertEquals(fresh.createdAt, t.fake.containers.get("web")!.createdAt);

  const waiting = t.controller.wait(key("web"));
  assertEquals(await answeredWithin(waiting, 100), "blocked", "Wait blocks for the new one");
  // The old container's exit, replayed (containerd re-publishes after restarts): stale news.
  t.fake.emit({
    kind: "task-exit",
    containerId: "web",
    processId: "web",
    pid: 1,
    exitStatus: 7,
    exitedAt: oldExit,
  });
  // Retention passes several times: the running sandbox's record must stay.
  await delay(600);
  assertEquals((await t.controller.get(key("web"))).state, "SANDBOX_READY");
  assertEquals(await answeredWithin(waiting, 0), "blocked");

  t.fake.exitTask("web", 0);
  const exited = await waiting;
  assertEquals(exited.exit.status, 0, "the new container's own exit is recorded");
  assertEquals(exited.exit.statusKnown, true);
});

Deno.test("a reused id seen only in a listing (the agent missed the removal) starts a new record", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-reuse-" });
  const fake = new FakeContainerd();
  try {
    fake.addContainer("web", { emit: false, createdAt: new Date(Date.now() - 60_000) });
    fake.startTask("web", { emit: false });
    fake.exitTask("web", 7, { emit: false });
    {
      await using t = await setup({}, undefined, { fake, storePath: `${dir}/s.kv` });
      assertEquals((await t.controller.wait(key("web"))).exit.status, 7);
    }
    // While the agent is down the container is removed and a new one takes its id.
    fake.removeContainer("web", { emit: false });
    fake.addContainer("web", { emit: false });
    const pid = fake.startTask("web", { emit: false });
    await using t = await setup({}, undefined, { fake, storePath: `${dir}/s.kv` });
    const record = await t.controller.get(key("web"));
    assertEquals([record.state, record.pid, record.exit], ["SANDBOX_READY", pid, undefined]);
  } finally {
    fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- 2. no inference from a listing whose closing marker did not come back -------------

Deno.test("a resync whose closing marker lags infers nothing until it is back: the real exit wins", async () => {
  await using t = await setup({ resyncIntervalMs: 30, markerTimeoutMs: 20 });
  t.fake.addContainer("pod");
  t.fake.startTask("pod");
  await t.settle();
  t.fake.hold(); // the event stream lags behind the listings from here on
  t.fake.exitTask("pod", 137);
  t.fake.ownerDeletesTask("pod"); // as the CRI does, ~15 ms after the exit
  const lists = t.fake.callsOf("listTasks").length;
  await eventually("three resyncs", () => t.fake.callsOf("listTasks").length >= lists + 3);
  await delay(100); // far beyond the marker timeout
  assertEquals((await t.controller.get(key("pod"))).exit, undefined, "nothing inferred");
  t.fake.release();
  const record = await t.controller.wait(key("pod"));
  assertEquals(record.exit.status, 137);
  assertEquals(record.exit.source, "event");
  assertEquals(record.exit.statusKnown, true);
});

// ---- 3. no inference while evidence can still come -------------------------------------

for (const events of ["stream", "poll"] as const) {
  Deno.test(`${events}: a sandbox that never had a task has no exit while its container exists, however old`, async () => {
    await using t = await setup(
      { events, resyncIntervalMs: 20, pollIntervalMs: 20 },
      (fake) =>
        fake.addContainer("cni-slow", {
          emit: false,
          createdAt: new Date(Date.now() - 3_600_000),
        }),
    );
    const lists = t.fake.callsOf("listTasks").length;
    await eventually("three more listings", () => t.fake.callsOf("listTasks").length >= lists + 3);
    await t.settle();
    const waiting = await t.controller.get(key("cni-slow"));
    assertEquals([waiting.state, waiting.exit], ["SANDBOX_NOTREADY", undefined]);
    // containerd's CRI creates the task once CNI is done, long after the container.
    const pid = t.fake.startTask("cni-slow");
    await eventually(
      "the sandbox to be READY",
      async () => (await t.controller.get(key("cni-slow"))).state === "SANDBOX_READY",
    );
    assertEquals((await t.controller.get(key("cni-slow"))).pid, pid);
  });
}

Deno.test("a sandbox that never had a task and is removed records the lost exit", async () => {
  await using t = await setup({}, (fake) => fake.addContainer("never", { emit: false }));
  const waiting = t.controller.wait(key("never"));
  assertEquals(await answeredWithin(waiting, 50), "blocked");
  t.fake.removeContainer("never");
  const record = await waiting;
  assertEquals([record.exit.status, record.exit.statusKnown], [255, false]);
  assertEquals(record.exit.source, "task-missing");
  assertEquals(record.exit.exitedAtKnown, false);
});

// ---- 4. shutdown drains what was received ---------------------------------------------

Deno.test("shutdown commits every exit already received before the store closes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-drain-" });
  const fake = new FakeContainerd();
  const ids = Array.from({ length: 300 }, (_, i) => `sb-${i}`);
  try {
    for (const id of ids) {
      fake.addContainer(id, { emit: false });
      fake.startTask(id, { emit: false });
    }
    const t = await setup({}, undefined, { fake, storePath: `${dir}/s.kv` });
    for (const [i, id] of ids.entries()) fake.exitTask(id, i % 256);
    // As serve does on SIGTERM, right after the events were handed over.
    await t.shutdown();
    await t[Symbol.asyncDispose]();

    const store = await KvSandboxStore.open(`${dir}/s.kv`);
    try {
      const records = await store.list();
      const recorded = records.filter((r) => r.exit?.source === "event");
      assertEquals(recorded.length, ids.length, "every received exit was committed");
      for (const r of recorded) assertEquals(r.exit!.status, Number(r.id.slice(3)) % 256);
    } finally {
      store.close();
    }
  } finally {
    fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shutdown is bounded when containerd stops answering, and says what it could not commit", async () => {
  await using t = await setup({
    retryBackoff: { initialMs: 60_000, maxMs: 60_000 },
  });
  t.fake.addContainer("sb");
  t.fake.startTask("sb");
  await t.settle();
  t.fake.down(); // no marker can come back
  const started = performance.now();
  await t.shutdown();
  const took = performance.now() - started;
  assert(took < 5_000, `shutdown took ${took} ms`);
});

// ---- 5. store misses are asked of containerd ------------------------------------------

Deno.test("a sandbox containerd has but the store does not yet is answered from containerd", async () => {
  await using t = await setup();
  t.fake.hold(); // its events have not been applied yet
  t.fake.addContainer("fresh");
  const pid = t.fake.startTask("fresh");
  const record = await t.controller.get(key("fresh"));
  assertEquals([record.state, record.pid], ["SANDBOX_READY", pid]);
  const waiting = t.controller.wait(key("fresh"));
  assertEquals(await answeredWithin(waiting, 50), "blocked", "Wait blocks, not NOT_FOUND");
  await assertRejects(() => t.controller.get(key("none")), NotFoundError);
  await assertRejects(() => t.controller.wait(key("none")), NotFoundError);
  t.fake.release();
  t.fake.exitTask("fresh", 3);
  assertEquals((await waiting).exit.status, 3);
});

Deno.test("while containerd cannot be asked, an unknown sandbox is UNAVAILABLE, not NOT_FOUND", async () => {
  await using t = await setup({}, (fake) => {
    fake.addContainer("there", { emit: false });
    fake.startTask("there", { emit: false });
    fake.down();
  }, { connected: false });
  assertEquals((await t.controller.firstOutcome()).state, "disconnected");
  const err = await assertRejects(() => t.controller.get(key("there")), UnavailableError);
  assertMatch(err.message, /not in podsandboxd's records.*cannot be asked/);
  await assertRejects(() => t.controller.wait(key("there")), UnavailableError);
  t.fake.up();
  await eventually("connected", () => t.controller.status.state === "connected");
  assertEquals((await t.controller.get(key("there"))).state, "SANDBOX_READY");
  await assertRejects(() => t.controller.get(key("none")), NotFoundError);
});

// ---- 6. namespaces no longer followed -------------------------------------------------

Deno.test("records of a namespace the agent no longer follows answer only with their exit, then expire", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-ns-" });
  const path = `${dir}/s.kv`;
  try {
    // Written by an agent that followed "old-ns", a while ago.
    const past = new Date(Date.now() - 3_600_000);
    const before = await KvSandboxStore.open(path, { now: () => past });
    const running = key("running", "old-ns");
    const exited = key("exited", "old-ns");
    await before.markRunning(running, 10, { createdAt: instantFromDate(past) });
    await before.markRunning(exited, 11, { createdAt: instantFromDate(past) });
    await before.recordExit(exited, {
      status: 4,
      exitedAt: instantFromDate(past),
      source: "event",
      statusKnown: true,
    });
    before.close();

    await using t = await setup({ retentionMs: 0 }, undefined, { storePath: path });
    const err = await assertRejects(() => t.controller.get(running), FailedPreconditionError);
    assertMatch(err.message, /follows namespace k8s\.io, not old-ns/);
    assertMatch(err.message, /serve --namespace old-ns/);
    await assertRejects(() => t.controller.wait(running), FailedPreconditionError);
    assertEquals((await t.controller.get(exited)).exit?.status, 4);
    assertEquals((await t.controller.wait(exited)).exit.status, 4);
    assertEquals((await t.controller.list()).map((r) => r.id), ["exited"]);
    await assertRejects(() => t.controller.get(key("none", "old-ns")), NotFoundError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("retention expires records of namespaces not followed once they are older than it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-ns-exp-" });
  const path = `${dir}/s.kv`;
  try {
    const before = await KvSandboxStore.open(path, {
      now: () => new Date(Date.now() - 3_600_000),
    });
    await before.markRunning(key("stale", "old-ns"), 12);
    before.close();
    await using t = await setup({ retentionMs: 200 }, undefined, { storePath: path });
    await eventually("the stale record to expire", async () => (await t.store.list()).length === 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- 7. classification at apply time --------------------------------------------------

Deno.test("an exit applied after its sandbox container is gone still counts when a record proves it was a sandbox", async () => {
  await using t = await setup({ resyncIntervalMs: 20, markerTimeoutMs: 10 });
  t.fake.addContainer("gone");
  t.fake.startTask("gone");
  await t.settle();
  t.fake.hold();
  t.fake.exitTask("gone", 7);
  t.fake.removeContainer("gone");
  // Listings no longer show it: the agent forgets that the id was a sandbox.
  const lists = t.fake.callsOf("listTasks").length;
  await eventually("two resyncs", () => t.fake.callsOf("listTasks").length >= lists + 2);
  t.fake.release();
  const record = await t.controller.wait(key("gone"));
  assertEquals(record.exit.status, 7, "the real exit, not 255 task-missing");
  await t.settle();
  assert((await t.controller.get(key("gone"))).deletedAt);
});

Deno.test("a sandbox created, exited and removed before its events are applied leaves no record (nothing proves it was one)", async () => {
  await using t = await setup();
  t.fake.hold();
  t.fake.addContainer("blink");
  t.fake.startTask("blink");
  t.fake.exitTask("blink", 1);
  t.fake.removeContainer("blink");
  t.fake.release();
  await t.settle();
  await assertRejects(() => t.controller.get(key("blink")), NotFoundError);
  assertEquals(t.controller.retryingCount, 0, "its events were handled, not left failing");
});

// ---- 8. backoff through an outage -----------------------------------------------------

Deno.test("a sandbox job failing during an outage is retried as soon as containerd is back, not after its backoff", async () => {
  await using t = await setup({ retryBackoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 } });
  // The first lookup for the new container fails: containerd went away at that moment.
  t.fake.failNext("listContainers", new UnavailableError("connection refused"));
  t.fake.addContainer("late");
  t.fake.startTask("late");
  await eventually("the job to back off", () => t.controller.retryingCount === 1);
  t.fake.down();
  t.fake.up();
  await eventually(
    "the sandbox to be recorded well before its 60 s backoff",
    async () => (await t.store.get(key("late")))?.state === "SANDBOX_READY",
    { timeoutMs: 5_000 },
  );
});

Deno.test("a sandbox stuck in backoff does not hold a reconnect's resync behind it", async () => {
  await using t = await setup({
    reap: "always",
    retryBackoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
  });
  t.fake.addContainer("stuck");
  t.fake.startTask("stuck");
  t.fake.addContainer("meanwhile");
  t.fake.startTask("meanwhile");
  await t.settle();
  t.fake.failNextFor(
    "deleteTask",
    "stuck",
    ...Array(10).fill(new UnavailableError("ttrpc: closed")),
  );
  t.fake.exitTask("stuck", 137);
  await eventually("stuck to back off", () => t.controller.retryingCount === 1);
  t.fake.down();
  await eventually("disconnected", () => t.controller.status.state === "disconnected");
  t.fake.exitTask("meanwhile", 2, { emit: false });
  t.fake.ownerDeletesTask("meanwhile", { emit: false });
  t.fake.up();
  await eventually("reconnected and synced", () => t.controller.status.state === "connected", {
    timeoutMs: 5_000,
  });
  const meanwhile = await t.controller.wait(key("meanwhile"));
  assertEquals(meanwhile.exit.source, "task-missing", "inferred from the resync's listing");
  assertEquals((await t.controller.get(key("stuck"))).exit, undefined, "still retrying");
});
