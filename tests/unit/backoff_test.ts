/**
 * Backoff (exponential, capped, jittered) and the abortable delay.
 */
import { Backoff, delay } from "../../src/controller/backoff.ts";
import { assertEquals, assertRejects } from "../harness/assert.ts";

Deno.test("without jitter the delay doubles from initialMs up to maxMs", () => {
  const backoff = new Backoff({ initialMs: 100, maxMs: 1_000, jitter: 0 });
  const delays = Array.from({ length: 7 }, () => backoff.next());
  assertEquals(delays, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
  assertEquals(backoff.attempts, 7);
});

Deno.test("a custom factor is used", () => {
  const backoff = new Backoff({ initialMs: 10, maxMs: 1_000, factor: 3, jitter: 0 });
  assertEquals([backoff.next(), backoff.next(), backoff.next()], [10, 30, 90]);
});

Deno.test("reset starts over from initialMs", () => {
  const backoff = new Backoff({ initialMs: 50, maxMs: 400, jitter: 0 });
  backoff.next();
  backoff.next();
  backoff.next();
  backoff.reset();
  assertEquals(backoff.attempts, 0);
  assertEquals([backoff.next(), backoff.next()], [50, 100]);
});

Deno.test("jitter spreads each delay by ±jitter and never past maxMs", () => {
  const low = new Backoff({ initialMs: 1_000, maxMs: 10_000, jitter: 0.2 }, () => 0);
  assertEquals([low.next(), low.next()], [800, 1_600]);
  const high = new Backoff({ initialMs: 1_000, maxMs: 10_000, jitter: 0.2 }, () => 1);
  assertEquals([high.next(), high.next()], [1_200, 2_400]);
  const middle = new Backoff({ initialMs: 1_000, maxMs: 10_000 }, () => 0.5);
  assertEquals(middle.next(), 1_000, "random 0.5 means no spread; jitter defaults to 0.2");
  const capped = new Backoff({ initialMs: 10_000, maxMs: 10_000, jitter: 0.5 }, () => 1);
  assertEquals(capped.next(), 10_000);
});

Deno.test("delay resolves when there is no signal or it never aborts", async () => {
  await delay(1);
  await delay(1, new AbortController().signal);
});

Deno.test("delay rejects with the signal's reason when aborted, also before it starts", async () => {
  const abort = new AbortController();
  const waiting = delay(60_000, abort.signal);
  abort.abort(new RangeError("stop"));
  const err = await assertRejects(() => waiting, RangeError);
  assertEquals(err.message, "stop");
  // The 60 s timer was cleared: the test's op sanitizer would report it otherwise.
  await assertRejects(() => delay(60_000, AbortSignal.abort(new TypeError("early"))), TypeError);
});
