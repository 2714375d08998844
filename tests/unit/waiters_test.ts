/**
 * ExitWaiters: blocked waits woken by notify, freed by abort, released by close.
 */
import { ExitWaiters } from "../../src/controller/waiters.ts";
import { assertEquals, assertRejects } from "../harness/assert.ts";

/** Settles to "pending" when the promise has not settled after a few ticks. */
async function state(promise: Promise<unknown>): Promise<"pending" | "resolved" | "rejected"> {
  const pending = Symbol();
  const ticks = (async () => {
    for (let i = 0; i < 10; i++) await Promise.resolve();
    return pending;
  })();
  const outcome = await Promise.race([
    promise.then(() => "resolved" as const, () => "rejected" as const),
    ticks,
  ]);
  return outcome === pending ? "pending" : outcome as "resolved" | "rejected";
}

Deno.test("notify wakes every waiter of its key and none of another key", async () => {
  const waiters = new ExitWaiters();
  const a1 = waiters.register("ns/a");
  const a2 = waiters.register("ns/a");
  const b = waiters.register("ns/b");
  assertEquals(waiters.size, 3);
  waiters.notify("ns/a");
  assertEquals(await state(a1.promise), "resolved");
  assertEquals(await state(a2.promise), "resolved");
  assertEquals(await state(b.promise), "pending");
  assertEquals(waiters.size, 1, "woken waiters leave the registry");
  waiters.notify("ns/missing"); // nobody waits: nothing happens
  assertEquals(await state(b.promise), "pending");
  b.dispose();
  assertEquals(waiters.size, 0);
});

Deno.test("notify hands its value (the committed record) to every waiter of the key", async () => {
  const waiters = new ExitWaiters<{ status: number }>();
  const a = waiters.register("ns/a");
  const b = waiters.register("ns/a");
  waiters.notify("ns/a", { status: 137 });
  assertEquals(await a.promise, { status: 137 });
  assertEquals(await b.promise, { status: 137 });
  const c = waiters.register("ns/a");
  waiters.notify("ns/a");
  assertEquals(await c.promise, undefined);
});

Deno.test("a waiter registered after a notify waits for the next one", async () => {
  const waiters = new ExitWaiters();
  waiters.notify("k");
  const w = waiters.register("k");
  assertEquals(await state(w.promise), "pending");
  waiters.notify("k");
  assertEquals(await state(w.promise), "resolved");
});

Deno.test("abort rejects with the signal's reason and frees the slot", async () => {
  const waiters = new ExitWaiters();
  const abort = new AbortController();
  const w = waiters.register("k", abort.signal);
  const other = waiters.register("k");
  assertEquals(waiters.size, 2);
  const reason = new RangeError("caller gave up");
  abort.abort(reason);
  let caught: unknown;
  await w.promise.catch((err) => (caught = err));
  assertEquals(caught, reason);
  assertEquals(waiters.size, 1);
  assertEquals(await state(other.promise), "pending", "the other waiter is unaffected");
  waiters.notify("k");
  assertEquals(await state(other.promise), "resolved");
  assertEquals(waiters.size, 0);
});

Deno.test("an already-aborted signal rejects at once and registers nothing", async () => {
  const waiters = new ExitWaiters();
  const reason = new Error("already gone");
  const w = waiters.register("k", AbortSignal.abort(reason));
  await assertRejects(() => w.promise, Error);
  assertEquals(waiters.size, 0);
});

Deno.test("dispose is idempotent and stops a later notify or abort from reaching it", async () => {
  const waiters = new ExitWaiters();
  const abort = new AbortController();
  const w = waiters.register("k", abort.signal);
  w.dispose();
  w.dispose();
  assertEquals(waiters.size, 0);
  waiters.notify("k");
  abort.abort(new Error("late"));
  assertEquals(await state(w.promise), "pending");
  assertEquals(waiters.size, 0, "the count never goes negative");
});

Deno.test("close rejects current and future waiters with the reason", async () => {
  const waiters = new ExitWaiters();
  const a = waiters.register("a");
  const b = waiters.register("b");
  const reason = new Error("shutting down");
  waiters.close(reason);
  for (const w of [a, b]) {
    let caught: unknown;
    await w.promise.catch((err) => (caught = err));
    assertEquals(caught, reason);
  }
  assertEquals(waiters.size, 0);
  const late = waiters.register("a");
  let caught: unknown;
  await late.promise.catch((err) => (caught = err));
  assertEquals(caught, reason);
  assertEquals(waiters.size, 0);
  late.dispose();
  assertEquals(waiters.size, 0);
});
