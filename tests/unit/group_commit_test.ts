/**
 * Group commit (src/store/group_commit.ts) and what the KV store builds on it: concurrent
 * writes share commits, each stays all-or-nothing with its check, a stale remembered
 * record costs a re-read and never a lost update.
 */
import { join } from "node:path";
import { GroupCommitter } from "../../src/store/group_commit.ts";
import { KvSandboxStore, STATE_FILE } from "../../src/store/kv_store.ts";
import type { SandboxExit, SandboxRecord } from "../../src/store/types.ts";
import { assert, assertEquals } from "../harness/assert.ts";

const NS = "k8s.io";
const key = (id: string) => ({ namespace: NS, id });
const exit = (status: number): Omit<SandboxExit, "recordedAt"> => ({
  status,
  exitedAt: "2026-01-01T00:00:00.000000001Z",
  source: "event",
  statusKnown: true,
});

async function tempState(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "podsandboxd-group-" });
  return {
    path: join(dir, STATE_FILE),
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("writes made in one turn share one commit; writes during a commit share the next; each resolves after its commit", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const groups: string[][] = [];
    const group = new GroupCommitter(kv, { onGroup: (subjects) => groups.push(subjects) });
    let second: Promise<string | null>[] = [];
    const write = (i: number, building?: () => void) =>
      group.commit({
        subject: `s${i}`,
        build: (op) => {
          building?.();
          return op.check({ key: ["k", i], versionstamp: null }).set(["k", i], i);
        },
      });
    // 40 writes in this turn: the store is idle, they go together at its end. While their
    // commit is being built (in flight), 10 more are made: they wait, then share the next.
    const during = () => {
      if (second.length === 0) second = Array.from({ length: 10 }, (_, i) => write(40 + i));
    };
    const first = Array.from({ length: 40 }, (_, i) => write(i, i === 0 ? during : undefined));
    await Promise.all(first);
    const stamps = await Promise.all([...first, ...second]);
    assertEquals(groups.map((g) => g.length), [40, 10]);
    assert(stamps.every((s) => typeof s === "string"));
    assertEquals(new Set(stamps).size, 2);
    for (let i = 0; i < 50; i++) assertEquals((await kv.get(["k", i])).value, i);
    // A lone write is committed at the end of its turn, alone.
    assert(typeof await write(50) === "string");
    assertEquals(groups.at(-1), ["s50"]);
  } finally {
    kv.close();
  }
});

Deno.test("a stale check fails only its own write; the rest of its group commits", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    await kv.set(["k", "stale"], "old");
    const stale = await kv.get(["k", "stale"]);
    await kv.set(["k", "stale"], "changed behind our back");
    const group = new GroupCommitter(kv);
    // Made in one turn, the four form one group.
    const first = group.commit({ subject: "first", build: (op) => op.set(["k", "first"], 1) });
    const results = await Promise.all([
      first,
      group.commit({ subject: "a", build: (op) => op.set(["k", "a"], 1) }),
      group.commit({ subject: "stale", build: (op) => op.check(stale).set(["k", "stale"], 2) }),
      group.commit({ subject: "b", build: (op) => op.set(["k", "b"], 1) }),
    ]);
    assertEquals(results.map((r) => r !== null), [true, true, false, true]);
    assertEquals((await kv.get(["k", "stale"])).value, "changed behind our back");
    assertEquals((await kv.get(["k", "a"])).value, 1);
    assertEquals((await kv.get(["k", "b"])).value, 1);
  } finally {
    kv.close();
  }
});

Deno.test("two writes of one subject never share a commit", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const group = new GroupCommitter(kv);
    const seen = await kv.get(["k", "x"]);
    const first = group.commit({ subject: "busy", build: (op) => op.set(["k", "busy"], 1) });
    // Both computed from the same read: only one may win, the other must see a conflict.
    const [, a, b] = await Promise.all([
      first,
      group.commit({ subject: "x", build: (op) => op.check(seen).set(["k", "x"], "a") }),
      group.commit({ subject: "x", build: (op) => op.check(seen).set(["k", "x"], "b") }),
    ]);
    assert(a !== null && b === null, `a=${a} b=${b}`);
    assertEquals((await kv.get(["k", "x"])).value, "a");
  } finally {
    kv.close();
  }
});

Deno.test("a group over Deno KV's limits is committed write by write", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    // 150 checks in one atomic operation exceed KV's 100: the group is refused as a whole.
    const group = new GroupCommitter(kv, { maxWrites: 200 });
    const first = group.commit({ subject: "first", build: (op) => op.set(["k", "first"], 1) });
    const rest = Array.from({ length: 150 }, (_, i) =>
      group.commit({
        subject: `s${i}`,
        build: (op) => op.check({ key: ["k", i], versionstamp: null }).set(["k", i], i),
      }));
    const stamps = await Promise.all([first, ...rest]);
    assert(stamps.every((s) => s !== null));
    assertEquals((await kv.get(["k", 149])).value, 149);
  } finally {
    kv.close();
  }
});

Deno.test("a burst of exits on many sandboxes is recorded with few commits, all durably", async () => {
  await using state = await tempState();
  let commits = 0;
  const store = await KvSandboxStore.open(state.path, { onCommit: () => commits++ });
  const ids = Array.from({ length: 300 }, (_, i) => `sb-${i}`);
  try {
    await Promise.all(ids.map((id, i) => store.markRunning(key(id), 1000 + i)));
    commits = 0;
    const results = await Promise.all(ids.map((id) => store.recordExit(key(id), exit(137))));
    assert(results.every((r) => r.changed));
    assert(commits <= 10, `${commits} commits for 300 exits`);
  } finally {
    store.close();
  }
  const reopened = await KvSandboxStore.open(state.path);
  try {
    const records = await reopened.list({ namespace: NS });
    assertEquals(records.length, 300);
    assert(records.every((r) => r.exit?.status === 137 && r.state === "SANDBOX_NOTREADY"));
  } finally {
    reopened.close();
  }
});

Deno.test("a record changed behind the store's back is read again, never overwritten", async () => {
  await using state = await tempState();
  const store = await KvSandboxStore.open(state.path);
  try {
    // The store now remembers sb as READY with pid 42 (and that entry's versionstamp).
    await store.markRunning(key("sb"), 42);
    // Another writer records an exit directly in the file.
    const other = await Deno.openKv(state.path);
    try {
      const entry = await other.get<SandboxRecord>(["sandbox", NS, "sb"]);
      const exited: SandboxRecord = {
        ...entry.value!,
        state: "SANDBOX_NOTREADY",
        exit: { ...exit(7), recordedAt: "2026-01-01T00:00:01.000000000Z" },
      };
      assert((await other.atomic().check(entry).set(entry.key, exited).commit()).ok);
    } finally {
      other.close();
    }
    // The remembered record is stale: the commit's check fails, the store reads again and
    // the first exit (7) stands.
    const result = await store.recordExit(key("sb"), exit(137));
    assertEquals(result.changed, false);
    assertEquals(result.record.exit?.status, 7);
    assertEquals((await store.get(key("sb")))?.exit?.status, 7);
    // And a later transition builds on what is really stored.
    const deleted = await store.markDeleted(key("sb"), "2026-01-02T00:00:00.000000000Z");
    assertEquals(deleted?.record.exit?.status, 7);
    assertEquals(deleted?.record.deletedAt, "2026-01-02T00:00:00.000000000Z");
  } finally {
    store.close();
  }
});

Deno.test("onGroup reports each commit's subjects and when it ran, in wall-clock time", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const groups: Array<{ subjects: string[]; startedAt: number; endedAt: number }> = [];
    const group = new GroupCommitter(kv, {
      onGroup: (subjects, startedAt, endedAt) => groups.push({ subjects, startedAt, endedAt }),
    });
    const before = performance.timeOrigin + performance.now();
    await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        group.commit({
          subject: `s${i}`,
          build: (op) => op.set(["k", i], i),
        })),
    );
    const after = performance.timeOrigin + performance.now();
    // Made in one turn: one commit.
    assertEquals(groups.map((g) => g.subjects), [["s0", "s1", "s2", "s3", "s4"]]);
    for (const g of groups) {
      assert(before <= g.startedAt && g.startedAt <= g.endedAt && g.endedAt <= after);
    }
    // A failed check is no commit: nothing reported for it.
    groups.length = 0;
    const stale = await group.commit({
      subject: "stale",
      build: (op) => op.check({ key: ["k", 0], versionstamp: null }).set(["k", 0], 9),
    });
    assertEquals([stale, groups.length], [null, 0]);
  } finally {
    kv.close();
  }
});
