/**
 * KeyedQueue: in order per key, concurrent across keys.
 */
import { KeyedQueue } from "../../src/controller/keyed_queue.ts";
import { assertEquals, assertRejects } from "../harness/assert.ts";

/** A promise the test settles by hand. */
function gate() {
  return Promise.withResolvers<void>();
}

/** Lets queued promise callbacks run. */
const ticks = async (n = 10) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

Deno.test("jobs of one key run one at a time, in the order queued", async () => {
  const queue = new KeyedQueue();
  const log: string[] = [];
  const gates = [gate(), gate(), gate()];
  const jobs = gates.map((g, i) =>
    queue.run("k", async () => {
      log.push(`start ${i}`);
      await g.promise;
      log.push(`end ${i}`);
      return i;
    })
  );
  await ticks();
  assertEquals(log, ["start 0"], "the second job waits for the first");
  // Releasing later jobs first changes nothing: order is by queueing.
  gates[2].resolve();
  gates[1].resolve();
  await ticks();
  assertEquals(log, ["start 0"]);
  gates[0].resolve();
  assertEquals(await Promise.all(jobs), [0, 1, 2]);
  assertEquals(log, ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]);
});

Deno.test("jobs of different keys run concurrently: a stuck key does not stall others", async () => {
  const queue = new KeyedQueue();
  const stuck = gate();
  const slow = queue.run("slow", () => stuck.promise.then(() => "slow"));
  const fast = await queue.run("fast", () => Promise.resolve("fast"));
  assertEquals(fast, "fast");
  await ticks();
  assertEquals(queue.size, 1, "only the stuck key has work in flight");
  stuck.resolve();
  assertEquals(await slow, "slow");
});

Deno.test("a failing job rejects its caller and does not block the next job of its key", async () => {
  const queue = new KeyedQueue();
  const failing = queue.run("k", () => Promise.reject(new RangeError("boom")));
  const thrown = queue.run("k", () => {
    throw new TypeError("sync boom");
  });
  const next = queue.run("k", () => Promise.resolve("after"));
  await assertRejects(() => failing, RangeError);
  await assertRejects(() => thrown, TypeError);
  assertEquals(await next, "after");
});

Deno.test("size counts keys with work in flight and returns to 0; drain waits for all", async () => {
  const queue = new KeyedQueue();
  assertEquals(queue.size, 0);
  const gates = [gate(), gate()];
  const done: string[] = [];
  queue.run("a", () => gates[0].promise.then(() => void done.push("a1")));
  queue.run("a", () => Promise.resolve().then(() => void done.push("a2")));
  queue.run("b", () => gates[1].promise.then(() => void done.push("b")));
  queue.run("c", () => Promise.reject(new Error("c fails"))).catch(() => {});
  assertEquals(queue.size, 3);
  const drained = queue.drain();
  gates[1].resolve();
  gates[0].resolve();
  await drained;
  assertEquals(done.sort(), ["a1", "a2", "b"]);
  assertEquals(queue.size, 0);
});

Deno.test("drain also waits for jobs queued while draining", async () => {
  const queue = new KeyedQueue();
  const done: string[] = [];
  queue.run("a", async () => {
    await ticks(2);
    queue.run("b", async () => {
      await ticks(2);
      done.push("b");
    });
    done.push("a");
  });
  await queue.drain();
  assertEquals(done, ["a", "b"]);
  assertEquals(queue.size, 0);
});
