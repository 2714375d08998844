/**
 * Reading the owning sandboxer from containerd's sandbox store, as it differs by version:
 * 1.6 has no store (UNIMPLEMENTED: asked once per session), 1.7's CRI pods are not in it
 * (NOT_FOUND: no sandboxer), 2.x names "podsandbox". A failing store never fails a listing.
 */
import {
  CancelledError,
  NotFoundError,
  UnavailableError,
  UnimplementedError,
} from "../../src/errors.ts";
import {
  lookUpSandboxers,
  type SandboxStoreCalls,
  SandboxStoreProbe,
  STORE_GET_LIMIT,
} from "../../src/containerd/sandbox_store.ts";
import { assertEquals, assertRejects } from "../harness/assert.ts";

/** A store holding `held` (id → sandboxer), or failing every call with `error`. */
function store(held: Record<string, string>, error?: Error) {
  const calls: string[] = [];
  const s: SandboxStoreCalls = {
    get(id) {
      calls.push(`get ${id}`);
      if (error) return Promise.reject(error);
      return id in held
        ? Promise.resolve(held[id])
        : Promise.reject(new NotFoundError(`sandbox ${id} not found`));
    },
    list() {
      calls.push("list");
      return error ? Promise.reject(error) : Promise.resolve(new Map(Object.entries(held)));
    },
  };
  return { s, calls };
}

Deno.test("a few containers are looked up one by one; not held or unnamed means no sandboxer", async () => {
  const { s, calls } = store({ a: "podsandbox", b: "" });
  const got = await lookUpSandboxers(["a", "b", "c"], s);
  assertEquals(Object.fromEntries(got), { a: "podsandbox" });
  assertEquals(calls.sort(), ["get a", "get b", "get c"]);
});

Deno.test("more containers than the Get limit take one List of the namespace", async () => {
  const ids = Array.from({ length: STORE_GET_LIMIT + 1 }, (_, i) => `p${i}`);
  const { s, calls } = store({ p0: "podsandbox", p3: "psd", other: "podsandbox" });
  const got = await lookUpSandboxers(ids, s);
  assertEquals(Object.fromEntries(got), { p0: "podsandbox", p3: "psd" });
  assertEquals(calls, ["list"]);
});

Deno.test("containerd 1.6 (no store): empty, and not asked again until the next session", async () => {
  const probe = new SandboxStoreProbe();
  const { s, calls } = store(
    {},
    new UnimplementedError("unknown service containerd.services.sandbox.v1.Store"),
  );
  assertEquals((await probe.sandboxers(["a"], s)).size, 0);
  assertEquals((await probe.sandboxers(["a", "b"], s)).size, 0);
  assertEquals(calls, ["get a"]);
  probe.reset();
  await probe.sandboxers(["a"], s);
  assertEquals(calls, ["get a", "get a"]);
});

Deno.test("a failing store gives no sandboxer and is asked again; a cancelled listing stays cancelled", async () => {
  const probe = new SandboxStoreProbe();
  const failing = store({}, new UnavailableError("connection reset"));
  assertEquals((await probe.sandboxers(["a"], failing.s)).size, 0);
  assertEquals((await probe.sandboxers(["a"], failing.s)).size, 0);
  assertEquals(failing.calls, ["get a", "get a"]);
  const cancelled = store({}, new CancelledError("containerd sandboxes.Get: cancelled"));
  await assertRejects(() => probe.sandboxers(["a"], cancelled.s), CancelledError);
  assertEquals((await probe.sandboxers([], failing.s)).size, 0, "no ids: no call");
  assertEquals(failing.calls.length, 2);
});
