/**
 * ttrpc framing: the header layout byte by byte, incremental decoding at every split
 * point, the 4 MiB limit, a connection cut inside a frame, and the decoder's memory bound.
 */
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameError,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
} from "../../src/ttrpc/frame.ts";
import { assert, assertEquals, assertThrows } from "../harness/assert.ts";

const bytes = (...xs: number[]) => Uint8Array.from(xs);

Deno.test("a frame is length (uint32 BE), stream id (uint32 BE), type, flags, payload", () => {
  const out = encodeFrame({ streamId: 0x01020305, type: 1, flags: 0x04, payload: bytes(9, 8, 7) });
  assertEquals([...out], [0, 0, 0, 3, 1, 2, 3, 5, 1, 4, 9, 8, 7]);
  assertEquals([HEADER_LENGTH, MAX_MESSAGE_LENGTH], [10, 4 * 1024 * 1024]);
});

Deno.test("encodeFrame refuses a payload above the limit and header fields out of range", () => {
  assertThrows(
    () => encodeFrame({ streamId: 1, type: 1, flags: 0, payload: new Uint8Array(11) }, 10),
    RangeError,
    /11 bytes is above the limit of 10/,
  );
  assertThrows(
    () => encodeFrame({ streamId: 2 ** 32, type: 1, flags: 0, payload: bytes() }),
    RangeError,
    /stream id/,
  );
  assertThrows(
    () => encodeFrame({ streamId: 1, type: 256, flags: 0, payload: bytes() }),
    RangeError,
    /type 256/,
  );
});

Deno.test("frames split at every byte boundary decode to the same frames", () => {
  const frames: Frame[] = [
    { streamId: 1, type: 2, flags: 0, payload: bytes(1, 2, 3, 4, 5) },
    { streamId: 3, type: 2, flags: 0, payload: bytes() },
    { streamId: 0xffffffff, type: 0xee, flags: 0xff, payload: bytes(0xaa) },
  ];
  const wire = Uint8Array.from(frames.flatMap((f) => [...encodeFrame(f)]));
  for (let a = 0; a <= wire.length; a++) {
    for (let b = a; b <= wire.length; b++) {
      const d = new FrameDecoder();
      const got = [
        ...d.push(wire.subarray(0, a)),
        ...d.push(wire.subarray(a, b)),
        ...d.push(wire.subarray(b)),
      ];
      assertEquals(got, frames, `split at ${a}/${b}`);
      assertEquals(d.buffered, 0);
      d.end();
    }
  }
});

Deno.test("the decoder copies what it keeps: the caller may reuse its read buffer", () => {
  const wire = encodeFrame({ streamId: 1, type: 2, flags: 0, payload: bytes(1, 2, 3, 4) });
  const d = new FrameDecoder();
  const buf = new Uint8Array(wire.length);
  buf.set(wire);
  assertEquals(d.push(buf.subarray(0, 12)), []);
  buf.fill(0xff, 0, 12); // reused for the next read
  const [frame] = d.push(buf.subarray(12));
  assertEquals([...frame.payload], [1, 2, 3, 4]);
});

Deno.test("a header announcing more than 4 MiB is a FrameError, and the decoder stays failed", () => {
  const d = new FrameDecoder();
  const header = new Uint8Array(HEADER_LENGTH);
  new DataView(header.buffer).setUint32(0, MAX_MESSAGE_LENGTH + 1);
  new DataView(header.buffer).setUint32(4, 7);
  header[8] = 2;
  const err = assertThrows(() => d.push(header), FrameError, /stream 7 announces 4194305/);
  assertEquals(d.buffered, 0);
  assertThrows(() => d.push(bytes(0)), FrameError);
  assert(assertThrows(() => d.end(), FrameError) === err);
});

Deno.test("exactly 4 MiB is allowed", () => {
  const payload = new Uint8Array(MAX_MESSAGE_LENGTH).fill(7);
  const [frame] = new FrameDecoder().push(
    encodeFrame({ streamId: 1, type: 2, flags: 0, payload }),
  );
  assertEquals(frame.payload.length, MAX_MESSAGE_LENGTH);
});

Deno.test("end() inside a header or a payload is a FrameError naming how much was there", () => {
  const wire = encodeFrame({ streamId: 5, type: 2, flags: 0, payload: bytes(1, 2, 3) });
  const inHeader = new FrameDecoder();
  inHeader.push(wire.subarray(0, 4));
  assertThrows(() => inHeader.end(), FrameError, /4 of 10 header bytes/);
  const inPayload = new FrameDecoder();
  inPayload.push(wire.subarray(0, 11));
  assertThrows(() => inPayload.end(), FrameError, /1 of 3 payload bytes of a frame on stream 5/);
});

Deno.test("a big frame trickling in holds at most twice what arrived (or 4 KiB), not what it claims", () => {
  const d = new FrameDecoder();
  const header = new Uint8Array(HEADER_LENGTH);
  new DataView(header.buffer).setUint32(0, MAX_MESSAGE_LENGTH);
  d.push(header);
  assertEquals(d.buffered, HEADER_LENGTH, "nothing allocated on the header's say-so");
  let arrived = 0;
  for (let i = 0; i < 200; i++) {
    d.push(new Uint8Array(97));
    arrived += 97;
    assert(d.buffered <= HEADER_LENGTH + Math.max(4096, 2 * arrived), `${d.buffered} bytes held`);
  }
});
