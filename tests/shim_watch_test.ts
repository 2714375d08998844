/**
 * Waiting on each sandbox's shim (--shim-wait), against the scripted fake containerd and
 * fake shims that answer a sandbox's exit also while containerd is down. The real shims
 * of containerd 1.6/1.7/2.1 are in shim_wait_e2e_test.ts.
 */
import { assert, assertEquals } from "./harness/assert.ts";
import { key, setup, type SetupOptions } from "./harness/controller_setup.ts";
import { FakeContainerd } from "./harness/fake_containerd.ts";
import { FakeShims } from "./harness/fake_shims.ts";
import { eventually } from "./harness/process.ts";
import type { ControllerOptions } from "../src/controller/controller.ts";
import type { SandboxStore } from "../src/store/types.ts";
import { ExitTrace, type ExitTraceLine } from "../src/trace/exit_trace.ts";

async function withShims(
  options: Partial<ControllerOptions> = {},
  prepare?: (fake: FakeContainerd) => void,
  more: SetupOptions = {},
) {
  const fake = more.fake ?? new FakeContainerd();
  const shims = new FakeShims(fake);
  const t = await setup({ ...options, shims: { locator: shims, dial: shims.dial } }, prepare, {
    fake,
    ...more,
  });
  const dispose = t[Symbol.asyncDispose];
  return Object.assign(t, {
    shims,
    async [Symbol.asyncDispose]() {
      await dispose();
      if (!more.fake) fake.close();
    },
  });
}

Deno.test("a sandbox that dies while containerd is down is recorded from its shim, with its true status", async () => {
  await using t = await withShims();
  t.fake.addContainer("pod");
  t.fake.startTask("pod");
  await eventually("the shim wait", () => t.controller.shimWaitCount === 1);
  t.fake.down();
  const exitedAt = t.fake.exitTask("pod", 137, { emit: false });
  // containerd's recovery deletes the task before anyone reconnects (as the CRI's does).
  t.fake.ownerDeletesTask("pod", { emit: false });
  const record = await t.controller.wait(key("pod"));
  assertEquals(t.controller.status.state, "disconnected", "recorded while containerd is down");
  assertEquals([record.exit.status, record.exit.statusKnown], [137, true]);
  assertEquals([record.exit.source, record.exit.exitedAt], ["shim", exitedAt]);
  t.fake.up();
  await eventually("reconnected", () => t.controller.status.state === "connected");
  await t.settle();
  assertEquals((await t.controller.get(key("pod"))).exit?.status, 137, "not overwritten by 255");
  assertEquals(t.controller.shimWaitCount, 0);
  assertEquals(t.shims.open, 0, "the connection closed with the exit");
});

Deno.test("an exit of 0 from the shim is recorded as 0", async () => {
  await using t = await withShims();
  t.fake.addContainer("zero");
  t.fake.startTask("zero");
  await eventually("the shim wait", () => t.controller.shimWaitCount === 1);
  t.fake.down();
  t.fake.exitTask("zero", 0, { emit: false });
  const record = await t.controller.wait(key("zero"));
  assertEquals([record.exit.status, record.exit.statusKnown, record.exit.source], [
    0,
    true,
    "shim",
  ]);
});

Deno.test("an agent started while containerd is down waits on the shims of the sandboxes it recorded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-shimw-" });
  const fake = new FakeContainerd();
  try {
    fake.addContainer("known", { emit: false });
    fake.startTask("known", { emit: false });
    {
      await using _ = await withShims({}, undefined, { fake, storePath: `${dir}/s.kv` });
    }
    fake.down();
    await using t = await withShims({}, undefined, {
      fake,
      storePath: `${dir}/s.kv`,
      connected: false,
    });
    assertEquals((await t.controller.firstOutcome()).state, "disconnected");
    await eventually("the shim wait", () => t.controller.shimWaitCount >= 1);
    fake.exitTask("known", 3, { emit: false });
    const record = await t.controller.wait(key("known"));
    assertEquals([record.exit.status, record.exit.source], [3, "shim"]);
  } finally {
    fake.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a sandbox the agent never saw, found in the state directory while containerd is down: its exit is recorded once containerd can tell it is a sandbox", async () => {
  await using t = await withShims({}, (fake) => {
    fake.addContainer("unseen", { emit: false });
    fake.startTask("unseen", { emit: false });
    fake.addContainer("app", { sandbox: false, emit: false });
    fake.startTask("app", { emit: false });
    fake.down();
  }, { connected: false });
  assertEquals((await t.controller.firstOutcome()).state, "disconnected");
  await eventually("both shims waited on", () => t.controller.shimWaitCount === 2);
  t.fake.exitTask("unseen", 9, { emit: false });
  t.fake.ownerDeletesTask("unseen", { emit: false });
  // Its handling waits for containerd (is it a sandbox?), retrying.
  await eventually("the exit to wait for containerd", () => t.controller.retryingCount === 1);
  t.fake.up();
  // Asked before it is recorded, the agent asks containerd: wait until it is connected.
  await eventually("reconnected", () => t.controller.status.state === "connected");
  const record = await t.controller.wait(key("unseen"));
  assertEquals([record.exit.status, record.exit.statusKnown, record.exit.source], [
    9,
    true,
    "shim",
  ]);
  await eventually("the app container's shim is let go", () => t.controller.shimWaitCount === 0);
  assertEquals(t.shims.open, 0);
});

Deno.test("a shim killed before its sandbox exits: the agent falls back to containerd (255 task-missing) and says why", async () => {
  await using t = await withShims({ resyncIntervalMs: 20 });
  t.fake.addContainer("orphan");
  t.fake.startTask("orphan");
  await eventually("the shim wait", () => t.controller.shimWaitCount === 1);
  t.shims.kill("orphan");
  await eventually("the wait ends", () => t.controller.shimWaitCount === 0);
  // The task dies with its shim; containerd learns nothing and later has no task.
  t.fake.ownerDeletesTask("orphan", { emit: false });
  const record = await t.controller.wait(key("orphan"));
  assertEquals([record.exit.status, record.exit.statusKnown, record.exit.source], [
    255,
    false,
    "task-missing",
  ]);
});

Deno.test("with containerd up, the first of shim and event wins and the other changes nothing", async () => {
  await using t = await withShims();
  for (let i = 0; i < 20; i++) {
    t.fake.addContainer(`sb${i}`);
    t.fake.startTask(`sb${i}`);
  }
  await eventually("20 shim waits", () => t.controller.shimWaitCount === 20);
  const times = new Map<string, string>();
  for (let i = 0; i < 20; i++) times.set(`sb${i}`, t.fake.exitTask(`sb${i}`, i));
  for (let i = 0; i < 20; i++) {
    const r = await t.controller.wait(key(`sb${i}`));
    assertEquals([r.exit.status, r.exit.exitedAt], [i, times.get(`sb${i}`)]);
    assert(["shim", "event"].includes(r.exit.source));
  }
  await t.settle();
  assertEquals(t.controller.shimWaitCount, 0);
  assertEquals(t.shims.open, 0);
});

Deno.test("a shim's exit of a container containerd listed as a sandbox is committed without reading the store first", async () => {
  let reads = 0;
  const counting = (store: SandboxStore): SandboxStore =>
    new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === "get") reads++;
        const value = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  await using t = await withShims({}, (fake) => {
    for (let i = 0; i < 10; i++) {
      fake.addContainer(`sb${i}`);
      fake.startTask(`sb${i}`, { emit: false });
    }
  }, { wrapStore: counting });
  await eventually("10 shim waits", () => t.controller.shimWaitCount === 10);
  await t.settle();
  reads = 0;
  // The shim answers; containerd's TaskExit never comes (it is down as the sandboxes die).
  t.fake.down();
  const times = Array.from({ length: 10 }, (_, i) => t.fake.exitTask(`sb${i}`, i, { emit: false }));
  for (let i = 0; i < 10; i++) {
    await eventually(`sb${i}'s exit`, async () => (await t.store.get(key(`sb${i}`)))?.exit);
  }
  assertEquals(reads, 0, "reads by the controller while recording the shims' exits");
  for (let i = 0; i < 10; i++) {
    const r = (await t.store.get(key(`sb${i}`)))!;
    assertEquals([r.exit?.status, r.exit?.exitedAt, r.exit?.source], [i, times[i], "shim"]);
  }
  t.fake.up();
});

Deno.test("with exit tracing, each exit's line names the source that recorded it, its stages in order", async () => {
  const lines: ExitTraceLine[] = [];
  const trace = new ExitTrace({ write: (l) => lines.push(l) });
  {
    await using t = await withShims({ trace }, undefined, {
      store: { onGroupCommit: (keys, from, to) => trace.group(keys, from, to) },
    });
    for (let i = 0; i < 10; i++) {
      t.fake.addContainer(`sb${i}`);
      t.fake.startTask(`sb${i}`);
    }
    await eventually("10 shim waits", () => t.controller.shimWaitCount === 10);
    for (let i = 0; i < 10; i++) t.fake.exitTask(`sb${i}`, 137);
    const records = await Promise.all(
      Array.from({ length: 10 }, (_, i) => t.controller.wait(key(`sb${i}`))),
    );
    await t.settle();
    trace.flush();
    assertEquals(
      lines.map((l) => l.key).sort(),
      records.map((r) => `${r.namespace}/${r.id}`).sort(),
    );
    for (const line of lines) {
      const record = records.find((r) => `${r.namespace}/${r.id}` === line.key)!;
      assertEquals(line.won, record.exit.source, line.key);
      const won = line.won;
      const order = [
        `${won}.dispatched`,
        `${won}.job`,
        `${won}.commit`,
        "group.start",
        "group.end",
        `${won}.committed`,
        "notified",
      ].map((stage) => [stage, line.ms[stage]] as const);
      for (const [stage, ms] of order) assert(ms !== undefined, `${line.key}: no ${stage}`);
      for (let i = 1; i < order.length; i++) {
        assert(
          order[i - 1][1] <= order[i][1],
          `${line.key}: ${order[i - 1][0]} after ${order[i][0]}`,
        );
      }
      assert(line.groupSize! >= 1);
    }
  }
});

Deno.test("reap=always while containerd is down: the shim's exit is kept pending, then recorded after the delete", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-shimr-" });
  try {
    await using t = await withShims(
      { reap: "always", retryBackoff: { initialMs: 20, maxMs: 50 } },
      undefined,
      { storePath: `${dir}/s.kv` },
    );
    t.fake.addContainer("owned");
    t.fake.startTask("owned");
    await eventually("the shim wait", () => t.controller.shimWaitCount === 1);
    t.fake.down();
    t.fake.exitTask("owned", 137, { emit: false });
    await eventually(
      "pending durably",
      async () => (await t.store.listPendingExits()).length === 1,
    );
    const pending = (await t.store.listPendingExits())[0];
    assertEquals([pending.exit.status, pending.exit.source], [137, "shim"]);
    t.fake.up();
    const record = await t.controller.wait(key("owned"));
    assertEquals([record.exit.status, record.exit.source], [137, "shim"]);
    assertEquals(t.fake.tasks.has("owned"), false, "deleted before recorded");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
