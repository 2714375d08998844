/**
 * Instants: containerd's Timestamps (with nanoseconds) to RFC 3339 strings and back.
 */
import {
  formatTimestamp,
  instantFromDate,
  instantToMillis,
  isUnsetTimestamp,
  parseInstant,
  toTimestamp,
} from "../../src/time.ts";
import { assert, assertEquals, assertMatch, assertThrows } from "../harness/assert.ts";

/** Seconds of Go's zero time, 0001-01-01T00:00:00Z. */
const GO_ZERO_SECONDS = -62135596800;

Deno.test("formatTimestamp keeps all nine digits of nanoseconds, zero-padded", () => {
  // 1795777137 s = 2026-11-27T10:58:57Z
  assertEquals(
    formatTimestamp({ seconds: 1795777137, nanos: 123456789 }),
    "2026-11-27T10:58:57.123456789Z",
  );
  assertEquals(
    formatTimestamp({ seconds: 1795777137, nanos: 5 }),
    "2026-11-27T10:58:57.000000005Z",
  );
  assertEquals(
    formatTimestamp({ seconds: 1795777137, nanos: 0 }),
    "2026-11-27T10:58:57.000000000Z",
  );
  // One nanosecond after the epoch is a real instant, not "unset".
  assertEquals(formatTimestamp({ seconds: 0, nanos: 1 }), "1970-01-01T00:00:00.000000001Z");
});

Deno.test("formatTimestamp: absent, epoch-zero and Go's zero time mean 'never' (undefined)", () => {
  assertEquals(formatTimestamp(undefined), undefined);
  assertEquals(formatTimestamp({ seconds: 0, nanos: 0 }), undefined);
  assertEquals(formatTimestamp({ seconds: GO_ZERO_SECONDS, nanos: 0 }), undefined);
  assertEquals(isUnsetTimestamp({ seconds: GO_ZERO_SECONDS, nanos: 0 }), true);
  assertEquals(isUnsetTimestamp({ seconds: 1, nanos: 0 }), false);
});

Deno.test("formatTimestamp output has a fixed width, so strings sort in time order", () => {
  const instants = [
    { seconds: 1, nanos: 999_999_999 },
    { seconds: 2, nanos: 0 },
    { seconds: 2, nanos: 10 },
    { seconds: 1795777137, nanos: 1 },
  ].map((ts) => formatTimestamp(ts)!);
  assertEquals(new Set(instants.map((s) => s.length)).size, 1);
  assertEquals([...instants].reverse().sort(), instants);
});

Deno.test("parseInstant round-trips formatTimestamp, nanoseconds included", () => {
  for (
    const ts of [
      { seconds: 1795777137, nanos: 123456789 },
      { seconds: 1795777137, nanos: 1 },
      { seconds: 1, nanos: 0 },
      { seconds: -1, nanos: 500_000_000 }, // 1969-12-31T23:59:59.5Z
    ]
  ) {
    assertEquals(parseInstant(formatTimestamp(ts)!), ts);
  }
});

Deno.test("parseInstant accepts short fractions, no fraction and numeric offsets", () => {
  assertEquals(parseInstant("2026-11-27T10:58:57Z"), { seconds: 1795777137, nanos: 0 });
  assertEquals(parseInstant("2026-11-27T10:58:57.5Z"), { seconds: 1795777137, nanos: 500_000_000 });
  assertEquals(parseInstant("2026-11-27T11:58:57.000001+01:00"), {
    seconds: 1795777137,
    nanos: 1000,
  });
  assertEquals(parseInstant("2026-11-27T08:28:57-02:30"), { seconds: 1795777137, nanos: 0 });
});

Deno.test("parseInstant refuses malformed and impossible instants with a RangeError naming the value", () => {
  for (
    const bad of [
      "",
      "yesterday",
      "2026-11-27",
      "2026-11-27 10:58:57Z", // space instead of T
      "2026-11-27T10:58:57", // no zone
      "2026-11-27T10:58:57.1234567890Z", // ten fraction digits
      "2026-11-27T10:58:57.Z",
      "2026-13-01T00:00:00Z", // month 13
      "2026-02-30T00:00:00Z", // no 30th of February
      "2026-11-27T24:00:00Z", // hour 24
      "2026-11-27T10:61:00Z",
    ]
  ) {
    const err = assertThrows(() => parseInstant(bad), RangeError);
    assert(err.message.includes(JSON.stringify(bad)), `message names ${bad}: ${err.message}`);
  }
});

Deno.test("toTimestamp passes undefined through and parses strings", () => {
  assertEquals(toTimestamp(undefined), undefined);
  assertEquals(toTimestamp("1970-01-01T00:00:01.000000002Z"), { seconds: 1, nanos: 2 });
});

Deno.test("instantFromDate gives the nanosecond form at millisecond precision", () => {
  assertEquals(
    instantFromDate(new Date("2026-11-27T10:58:57.123Z")),
    "2026-11-27T10:58:57.123000000Z",
  );
  assertEquals(instantFromDate(new Date(0)), "1970-01-01T00:00:00.000000000Z");
  // Before the epoch the millisecond part must not go negative.
  assertEquals(
    instantFromDate(new Date("1969-12-31T23:59:59.250Z")),
    "1969-12-31T23:59:59.250000000Z",
  );
  assertMatch(instantFromDate(new Date()), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}000Z$/);
});

Deno.test("instantToMillis drops sub-millisecond digits only", () => {
  assertEquals(instantToMillis("2026-11-27T10:58:57.123000000Z"), 1795777137123);
  assertEquals(instantToMillis(instantFromDate(new Date(1234567890123))), 1234567890123);
});

Deno.test("timestamps no clock gives (beyond year 9999, nanos ≥ 1e9, fractional) format as absent", () => {
  assertEquals(formatTimestamp({ seconds: 1_099_511_627_776, nanos: 0 }), undefined);
  assertEquals(formatTimestamp({ seconds: 1_800_000_000, nanos: 2_147_483_647 }), undefined);
  assertEquals(formatTimestamp({ seconds: 1_800_000_000, nanos: -1 }), undefined);
  assertEquals(formatTimestamp({ seconds: 1.5, nanos: 0 }), undefined);
  assertEquals(
    formatTimestamp({ seconds: 253402300799, nanos: 999_999_999 }),
    "9999-12-31T23:59:59.999999999Z",
  );
});
