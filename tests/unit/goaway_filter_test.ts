/** The client-GOAWAY filter in front of grpc-js (src/server/goaway_filter.ts). */
import { CLIENT_PREFACE_BYTES, frameFilter, GOAWAY } from "../../src/server/goaway_filter.ts";
import { assertEquals } from "../harness/assert.ts";

/** One HTTP/2 frame: 9-byte header (length, type, flags, stream id) and its payload. */
function frame(type: number, payload: number[], stream = 0): number[] {
  const n = payload.length;
  return [n >> 16, (n >> 8) & 0xff, n & 0xff, type, 0, 0, 0, 0, stream, ...payload];
}

const PREFACE = Array.from({ length: CLIENT_PREFACE_BYTES }, (_, i) => i + 1);
const SETTINGS = frame(0x04, [0, 3, 0, 0, 0, 100]);
const HEADERS = frame(0x01, [1, 2, 3], 1);
const DATA = frame(0x00, Array.from({ length: 40 }, (_, i) => i), 1);
const GOAWAY_FRAME = frame(GOAWAY, [0, 0, 0, 0, 0, 0, 0, 0]);
const EMPTY_GOAWAY = frame(GOAWAY, []); // malformed, but dropped whole all the same

function run(bytes: number[], cut: number[], keep: (type: number) => boolean): number[] {
  const filter = frameFilter(CLIENT_PREFACE_BYTES, keep);
  const out: number[] = [];
  let at = 0;
  for (const end of [...cut, bytes.length]) {
    for (const piece of filter(new Uint8Array(bytes.slice(at, end)))) out.push(...piece);
    at = end;
  }
  return out;
}

Deno.test("the client's GOAWAY frames are dropped whole, every other byte passes, however the stream is cut", () => {
  const input = [
    ...PREFACE,
    ...SETTINGS,
    ...HEADERS,
    ...GOAWAY_FRAME,
    ...DATA,
    ...EMPTY_GOAWAY,
    ...HEADERS,
  ];
  const expected = [...PREFACE, ...SETTINGS, ...HEADERS, ...DATA, ...HEADERS];
  const dropGoaway = (type: number) => type !== GOAWAY;
  assertEquals(run(input, [], dropGoaway), expected, "one chunk");
  for (let cut = 1; cut < input.length; cut++) {
    assertEquals(run(input, [cut], dropGoaway), expected, `cut at ${cut}`);
  }
  // Byte by byte.
  assertEquals(run(input, input.map((_, i) => i + 1).slice(0, -1), dropGoaway), expected);
  // Kept when asked to keep it (after the agent's own GOAWAY).
  assertEquals(run(input, [30], () => true), input);
});
