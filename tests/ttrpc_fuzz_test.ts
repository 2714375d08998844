/**
 * Fuzzing the ttrpc layer, bounded and seeded like tests/fuzz_test.ts: random frame
 * streams (any type, flags, stream id, size), cut into random chunks and often damaged
 * (bit flips, truncation, garbage, oversized headers), through the frame decoder; and a
 * server answering the client's calls with random, damaged or missing responses.
 * Pass = only FrameError from the decoder, intact streams decode exactly, the buffer
 * stays bounded; every client call settles with a typed error or a payload, nothing is
 * left pending, and a fresh connection still works.
 *
 * FUZZ_SEED=n replays a seed; FUZZ_ITERATIONS=n runs longer (default 10,000).
 */
import { Buffer } from "node:buffer";
import { StatusError } from "../src/errors.ts";
import { Response } from "../src/gen/ttrpc/ttrpc.ts";
import { TtrpcClient } from "../src/ttrpc/client.ts";
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameError,
  FrameType,
  HEADER_LENGTH,
} from "../src/ttrpc/frame.ts";
import { assert, assertEquals } from "./harness/assert.ts";
import { mutate, prng, type Rng } from "./harness/prng.ts";
import { type Handler, TestTtrpcServer } from "./harness/ttrpc_server.ts";

const ITERATIONS = Number(Deno.env.get("FUZZ_ITERATIONS") ?? 10_000);
const SEED = Deno.env.get("FUZZ_SEED");
/** Seeds that once failed; they run on every CI run. */
const REGRESSION_SEEDS: number[] = [];
/** A small limit, so oversized frames are cheap to make; one run uses ttrpc's own. */
const SMALL_MAX = 2048;

function seeds(): number[] {
  return SEED !== undefined ? [Number(SEED)] : [...REGRESSION_SEEDS, Date.now() % 1_000_000];
}

function randomFrame(r: Rng, max: number): Frame {
  const size = r.pick([0, 1, r.int(64), r.int(max + 1), max]);
  return {
    streamId: r.pick([1, 3, r.int(2 ** 32)]),
    type: r.pick([FrameType.REQUEST, FrameType.RESPONSE, FrameType.DATA, r.int(256)]),
    flags: r.int(256),
    payload: r.bytes(size),
  };
}

/** A header announcing more than the limit (the payload never needs to exist). */
function oversizedHeader(r: Rng, max: number): Uint8Array {
  const h = new Uint8Array(HEADER_LENGTH);
  new DataView(h.buffer).setUint32(0, max + 1 + r.int(2 ** 32 - max - 1));
  new DataView(h.buffer).setUint32(4, r.int(2 ** 32));
  return h;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

type Damage = "none" | "mutated" | "truncated" | "oversized";

/** Pushes `wire` in random chunks; returns the frames or the FrameError. */
function decodeInChunks(r: Rng, wire: Uint8Array, max: number) {
  const d = new FrameDecoder({ maxPayload: max });
  const frames: Frame[] = [];
  try {
    for (let at = 0; at < wire.length;) {
      const n = 1 + r.int(r.pick([8, 64, 4096]));
      for (const f of d.push(wire.subarray(at, at + n))) {
        assert(f.payload.length <= max, `payload ${f.payload.length} > ${max}`);
        frames.push(f);
      }
      at += n;
      assert(d.buffered <= HEADER_LENGTH + max, `buffered ${d.buffered}`);
    }
    d.end();
    return { frames };
  } catch (err) {
    if (!(err instanceof FrameError)) throw err;
    assertEquals(d.buffered, 0, "a failed decoder holds nothing");
    return { frames, error: err };
  }
}

Deno.test(`fuzz: ${ITERATIONS} random and damaged frame streams through the ttrpc frame decoder`, () => {
  for (const seed of seeds()) {
    const r = prng(seed);
    const outcomes = new Map<string, number>();
    const count = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    try {
      for (let i = 0; i < ITERATIONS; i++) {
        // Mostly a small limit; every 50th stream at ttrpc's real 4 MiB.
        const max = i % 50 === 0 ? undefined : SMALL_MAX;
        const limit = max ?? 4 << 20;
        // Random payloads stay small at the real limit (the unit tests send a full 4 MiB).
        const sizeCap = max ?? 256;
        const frames = Array.from({ length: 1 + r.int(4) }, () => randomFrame(r, sizeCap));
        const encoded = frames.map((f) => encodeFrame(f, limit));
        const clean = concat(encoded);
        const damage: Damage = r.pick(["none", "mutated", "truncated", "oversized"]);
        const wire = damage === "none"
          ? clean
          : damage === "truncated"
          ? clean.subarray(0, r.int(clean.length))
          : damage === "oversized"
          ? concat([...encoded.slice(0, r.int(encoded.length + 1)), oversizedHeader(r, limit)])
          : mutate(r, clean);
        const { frames: got, error } = decodeInChunks(r, wire, limit);
        count(`${damage}:${error ? "FrameError" : "decoded"}`);
        if (damage === "none") {
          assertEquals(error, undefined);
          assertEquals(got, frames);
        } else if (damage === "oversized") {
          assert(error, "an oversized header is always refused");
          assertEquals(got, frames.slice(0, got.length));
        }
        if (damage === "truncated") {
          // What came before the damage decodes exactly.
          assertEquals(got, frames.slice(0, got.length));
        }
      }
      for (const k of ["none:decoded", "truncated:FrameError", "oversized:FrameError"]) {
        assert(
          (outcomes.get(k) ?? 0) >= Math.min(10, ITERATIONS / 100),
          `${k}: ${outcomes.get(k)}`,
        );
      }
      assert(
        (outcomes.get("mutated:FrameError") ?? 0) > 0 && (outcomes.get("mutated:decoded") ?? 0) > 0,
        `mutations reached both outcomes: ${JSON.stringify([...outcomes])}`,
      );
    } catch (err) {
      throw new Error(`fuzz seed ${seed} failed (FUZZ_SEED=${seed} replays it): ${err}`, {
        cause: err,
      });
    }
  }
});

/** One misbehaving answer: valid, odd status, damaged bytes, garbage, stray frames, silence, a hang-up. */
function fuzzHandler(r: Rng): Handler {
  return async (req) => {
    const conn = req.connection;
    const valid = () =>
      Response.encode({
        status: r.int(2) ? undefined : { code: r.int(20), message: r.text(r.int(40)) },
        payload: Buffer.from(r.bytes(r.int(100))),
      }).finish();
    const frame = (
      payload: Uint8Array,
      type: number = FrameType.RESPONSE,
      streamId = req.streamId,
    ) => encodeFrame({ streamId, type, flags: r.int(256), payload }, 1 << 30);
    switch (r.int(9)) {
      case 0:
      case 1:
        return { payload: r.bytes(r.int(50)) };
      case 2:
        return { status: { code: r.int(30), message: r.text(r.int(30)) } };
      case 3:
        await conn.writeRaw(frame(mutate(r, valid())));
        return "no-reply";
      case 4:
        await conn.writeRaw(
          frame(valid(), r.pick([FrameType.DATA, FrameType.REQUEST, r.int(256)])),
        );
        return "no-reply";
      case 5:
        // An answer on another stream (stray, or some other pending call's).
        await conn.writeRaw(frame(valid(), FrameType.RESPONSE, r.int(2 ** 32)));
        return "no-reply";
      case 6:
        await conn.writeRaw(mutate(r, frame(valid())));
        return "no-reply";
      case 7:
        if (r.int(4) === 0) conn.close();
        return "no-reply";
      default:
        await conn.writeRaw(oversizedHeader(r, 4 << 20).subarray(0, 1 + r.int(HEADER_LENGTH)));
        return "no-reply";
    }
  };
}

Deno.test(`fuzz: ${ITERATIONS / 5} calls through the ttrpc client against a misbehaving server`, async () => {
  const calls = ITERATIONS / 5;
  const dir = await Deno.makeTempDir({ prefix: "psd-ttrpc-fuzz-" });
  try {
    for (const seed of seeds()) {
      const r = prng(seed);
      const server = TestTtrpcServer.start(`${dir}/s-${seed}.sock`, {
        "fuzz.v1.F/Call": fuzzHandler(r),
        "fuzz.v1.F/Echo": (req) => ({ payload: req.payload }),
      });
      const outcomes = new Map<string, number>();
      let client = await TtrpcClient.connect(server.path);
      try {
        for (let done = 0; done < calls;) {
          if ((await Promise.race([client.closed, Promise.resolve(undefined)])) !== undefined) {
            await client[Symbol.asyncDispose]();
            client = await TtrpcClient.connect(server.path);
          }
          const batch = Array.from({ length: 1 + r.int(20) }, () => {
            const abort = r.int(10) === 0 ? AbortSignal.timeout(r.int(20)) : undefined;
            return client.call("fuzz.v1.F", "Call", r.bytes(r.int(30)), {
              timeoutMs: 20,
              signal: abort,
            });
          });
          const settled = await Promise.allSettled(batch);
          for (const s of settled) {
            if (s.status === "fulfilled") outcomes.set("ok", (outcomes.get("ok") ?? 0) + 1);
            else {
              assert(s.reason instanceof StatusError, `typed error, got ${s.reason}`);
              outcomes.set(s.reason.name, (outcomes.get(s.reason.name) ?? 0) + 1);
            }
          }
          assertEquals(client.pending, 0, "every call settled and was forgotten");
          done += batch.length;
        }
        for (const kind of ["ok", "DeadlineExceededError", "UnavailableError", "RemoteError"]) {
          assert((outcomes.get(kind) ?? 0) > 0, `${kind}: ${JSON.stringify([...outcomes])}`);
        }
        // Still correct afterwards, on a fresh connection.
        await client[Symbol.asyncDispose]();
        client = await TtrpcClient.connect(server.path);
        const back = await client.call("fuzz.v1.F", "Echo", Uint8Array.of(1, 2, 3));
        assertEquals([...back], [1, 2, 3]);
      } catch (err) {
        throw new Error(`fuzz seed ${seed} failed (FUZZ_SEED=${seed} replays it): ${err}`, {
          cause: err,
        });
      } finally {
        await client[Symbol.asyncDispose]();
        await server.close();
      }
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
