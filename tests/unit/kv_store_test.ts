/**
 * KvSandboxStore on a real Deno KV file in a temporary directory.
 */
import { join } from "node:path";
import { KvSandboxStore, SCHEMA_VERSION, STATE_FILE } from "../../src/store/kv_store.ts";
import type { SandboxExit } from "../../src/store/types.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "../harness/assert.ts";

const NS = "k8s.io";
const key = (id: string, namespace = NS) => ({ namespace, id });

const exit = (status: number, at = "2026-01-01T00:00:00.000000001Z"): Omit<
  SandboxExit,
  "recordedAt"
> => ({ status, exitedAt: at, source: "event", statusKnown: true });

/** A temporary state directory, removed on dispose. */
async function tempState(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "podsandboxd-kv-" });
  return {
    path: join(dir, STATE_FILE),
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A fake clock: each call returns the next second. */
function ticking(start = Date.parse("2026-03-01T00:00:00Z")): () => Date {
  let t = start;
  return () => new Date(t += 1_000);
}

Deno.test("records survive closing and reopening the store", async () => {
  await using state = await tempState();
  const store = await KvSandboxStore.open(state.path, { now: ticking() });
  try {
    await store.discover(key("a"), {
      labels: { app: "web" },
      createdAt: "2026-01-01T00:00:00.000000000Z",
    });
    await store.markRunning(key("a"), 42);
    await store.recordExit(key("a"), exit(3));
    await store.markRunning(key("b"), 43);
    await store.markDeleted(key("b"), "2026-02-02T00:00:00.000000000Z");
  } finally {
    store.close();
  }
  const reopened = await KvSandboxStore.open(state.path);
  try {
    const a = await reopened.get(key("a"));
    assertEquals(a?.state, "SANDBOX_NOTREADY");
    assertEquals(a?.pid, 42);
    assertEquals(a?.labels, { app: "web" });
    assertEquals(a?.exit, { ...exit(3), recordedAt: "2026-03-01T00:00:03.000000000Z" });
    const b = await reopened.get(key("b"));
    assertEquals(b?.state, "SANDBOX_READY");
    assertEquals(b?.deletedAt, "2026-02-02T00:00:00.000000000Z");
    assertEquals((await reopened.list()).map((r) => r.id).sort(), ["a", "b"]);
  } finally {
    reopened.close();
  }
  const kv = await Deno.openKv(state.path);
  try {
    assertEquals((await kv.get(["meta", "schema"])).value, SCHEMA_VERSION);
  } finally {
    kv.close();
  }
});

Deno.test("recordExit twice keeps the first exit and reports changed=false", async () => {
  await using state = await tempState();
  const store = await KvSandboxStore.open(state.path, { now: ticking() });
  try {
    await store.markRunning(key("sb"), 42);
    const first = await store.recordExit(key("sb"), exit(7));
    assertEquals(first.changed, true);
    assertEquals(first.record.exit?.status, 7);
    const second = await store.recordExit(key("sb"), exit(1, "2030-01-01T00:00:00.000000000Z"));
    assertEquals(second.changed, false);
    assertEquals(second.record, first.record);
    assertEquals(await store.get(key("sb")), first.record);
    // Nor does a late start revive it.
    const late = await store.markRunning(key("sb"), 99);
    assertEquals(late.changed, false);
    assertEquals((await store.get(key("sb")))?.state, "SANDBOX_NOTREADY");
  } finally {
    store.close();
  }
});

Deno.test("no-op operations report changed=false; markDeleted of an unknown key is null", async () => {
  await using state = await tempState();
  const store = await KvSandboxStore.open(state.path);
  try {
    assertEquals((await store.discover(key("sb"), { labels: {} })).changed, true);
    assertEquals((await store.discover(key("sb"), { labels: {} })).changed, false);
    assertEquals((await store.markRunning(key("sb"), 5)).changed, true);
    assertEquals((await store.markRunning(key("sb"), 5)).changed, false);
    assertEquals(await store.markDeleted(key("nope"), "2026-01-01T00:00:00.000000000Z"), null);
    assertEquals(await store.get(key("nope")), null);
  } finally {
    store.close();
  }
});

Deno.test("list filters by namespace (exactly, not by prefix) and by state", async () => {
  await using state = await tempState();
  const store = await KvSandboxStore.open(state.path);
  try {
    await store.markRunning(key("run-1"), 1);
    await store.markRunning(key("run-2"), 2);
    await store.recordExit(key("gone"), exit(0));
    await store.discover(key("new"), {});
    await store.markRunning(key("other", "k8s"), 3);
    await store.markRunning(key("other2", "k8s.io.x"), 4);
    const ids = (records: { id: string }[]) => records.map((r) => r.id).sort();
    assertEquals(ids(await store.list({ namespace: NS })), ["gone", "new", "run-1", "run-2"]);
    assertEquals(ids(await store.list({ namespace: "k8s" })), ["other"]);
    assertEquals(ids(await store.list({ namespace: NS, state: "SANDBOX_READY" })), [
      "run-1",
      "run-2",
    ]);
    assertEquals(ids(await store.list({ namespace: NS, state: "SANDBOX_NOTREADY" })), [
      "gone",
      "new",
    ]);
    assertEquals(ids(await store.list({ state: "SANDBOX_READY" })), [
      "other",
      "other2",
      "run-1",
      "run-2",
    ]);
    assertEquals((await store.list()).length, 6);
    assertEquals(await store.list({ namespace: "empty" }), []);
  } finally {
    store.close();
  }
});

Deno.test("a state written by a newer schema is refused with a clear error and left alone", async () => {
  await using state = await tempState();
  const kv = await Deno.openKv(state.path);
  await kv.set(["meta", "schema"], 99);
  await kv.set(["sandbox", NS, "keep"], { marker: "untouched" });
  kv.close();
  const err = await assertRejects(() => KvSandboxStore.open(state.path), Error);
  assertMatch(err.message, /schema version 99/);
  assertMatch(err.message, new RegExp(`understands \\(${SCHEMA_VERSION}\\)`));
  assert(err.message.includes(state.path), err.message);
  // The refused store neither rewrote the schema nor touched records (and closed its handle:
  // the test's resource sanitizer would report a leaked KV otherwise).
  const check = await Deno.openKv(state.path);
  try {
    assertEquals((await check.get(["meta", "schema"])).value, 99);
    assertEquals((await check.get(["sandbox", NS, "keep"])).value, { marker: "untouched" });
  } finally {
    check.close();
  }
});

Deno.test("the current or an older schema version opens", async () => {
  await using state = await tempState();
  const kv = await Deno.openKv(state.path);
  await kv.set(["meta", "schema"], SCHEMA_VERSION);
  kv.close();
  const store = await KvSandboxStore.open(state.path);
  store.close();
});

Deno.test("concurrent recordExit calls on one key: exactly one wins, all see the same exit", async () => {
  await using state = await tempState();
  const store = await KvSandboxStore.open(state.path);
  try {
    await store.markRunning(key("sb"), 42);
    const statuses = [1, 2, 3, 4, 5, 6, 7, 8];
    const results = await Promise.all(
      statuses.map((s) =>
        store.recordExit(key("sb"), exit(s, `2026-01-01T00:00:0${s}.000000000Z`))
      ),
    );
    assertEquals(results.filter((r) => r.changed).length, 1);
    const stored = await store.get(key("sb"));
    for (const r of results) assertEquals(r.record.exit, stored?.exit);
    const winner = results.find((r) => r.changed)!;
    assertEquals(stored?.exit?.status, winner.record.exit?.status);
  } finally {
    store.close();
  }
});

Deno.test("a fake clock stamps updatedAt and recordedAt", async () => {
  const store = await KvSandboxStore.open(":memory:", {
    now: () => new Date("2026-04-04T04:04:04.004Z"),
  });
  try {
    const { record } = await store.recordExit(key("sb"), exit(0));
    assertEquals(record.updatedAt, "2026-04-04T04:04:04.004000000Z");
    assertEquals(record.exit?.recordedAt, "2026-04-04T04:04:04.004000000Z");
    assertEquals(record.exit?.status, 0);
  } finally {
    store.close();
  }
});

/**
 * Opens the store through a KV whose `list` is held once armed: it reads every entry,
 * then waits for `release` before yielding them, so a commit can land in between.
 */
function heldListing() {
  let armed = false;
  const read = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  const openKv = async (path: string): Promise<Deno.Kv> => {
    const kv = await Deno.openKv(path);
    return new Proxy(kv, {
      get(target, prop) {
        if (prop === "list" && armed) {
          armed = false;
          return (selector: Deno.KvListSelector, options?: Deno.KvListOptions) =>
            (async function* () {
              const entries = [];
              for await (const entry of target.list(selector, options)) entries.push(entry);
              read.resolve();
              await release.promise;
              yield* entries;
            })();
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  };
  return {
    openKv,
    arm: () => (armed = true),
    read: read.promise,
    release: release.resolve,
  };
}

Deno.test("a listing read before a concurrent commit never replaces the newer copy a later write starts from", async () => {
  await using state = await tempState();
  const held = heldListing();
  const store = await KvSandboxStore.open(state.path, { openKv: held.openKv });
  try {
    const web = key("web");
    await store.markRunning(web, 10, { createdAt: "2026-01-01T00:00:00.000000000Z" });
    await store.recordExit(web, exit(7, "2026-01-01T00:01:00.000000000Z"));
    held.arm();
    const listing = store.list();
    await held.read; // the listing holds the old container's exited record
    // Meanwhile a new container with the same id starts a new record.
    const fresh = await store.markRunning(web, 20, {
      createdAt: "2026-01-02T00:00:00.000000000Z",
    });
    assertEquals(fresh.record.exit, undefined);
    held.release();
    assertEquals((await listing)[0].exit?.status, 7, "the listing itself is what it read");
    // The new container's exit must be judged against the new record, not the listed one.
    const result = await store.recordExit(web, exit(0, "2026-01-02T00:01:00.000000000Z"));
    assertEquals(result.changed, true);
    assertEquals((await store.get(web))?.exit?.status, 0);
  } finally {
    store.close();
  }
});

Deno.test("a listing read before an expiry does not bring the expired record back", async () => {
  await using state = await tempState();
  const held = heldListing();
  const store = await KvSandboxStore.open(state.path, { openKv: held.openKv });
  try {
    const web = key("web");
    await store.markRunning(web, 10, { createdAt: "2026-01-01T00:00:00.000000000Z" });
    await store.recordExit(web, exit(7, "2026-01-01T00:01:00.000000000Z"));
    await store.markDeleted(web, "2026-01-01T00:02:00.000000000Z");
    held.arm();
    const listing = store.list();
    await held.read;
    assertEquals((await store.expireRemoved("2027-01-01T00:00:00.000000000Z", NS)).length, 1);
    held.release();
    await listing;
    // A transition on the expired record starts from nothing, not from the listed copy.
    const result = await store.markRunning(web, 30, {
      createdAt: "2026-01-01T00:00:00.000000000Z",
    });
    assertEquals([result.changed, result.record.exit, result.record.state], [
      true,
      undefined,
      "SANDBOX_READY",
    ]);
  } finally {
    store.close();
  }
});
