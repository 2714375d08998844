/**
 * Go-style durations for flags: "500ms", "5s", "1m30s", "2h".
 */
import { formatDuration, parseDuration } from "../../src/config/duration.ts";
import { assert, assertEquals, assertThrows } from "../harness/assert.ts";

Deno.test("parseDuration reads every unit, compound values and fractions", () => {
  const cases: Array<[string, number]> = [
    ["500ms", 500],
    ["5s", 5_000],
    ["1m30s", 90_000],
    ["2h", 7_200_000],
    ["1.5s", 1_500],
    ["0", 0],
    ["0s", 0],
    ["1h2m3s4ms", 3_723_004],
    ["90m", 5_400_000],
  ];
  for (const [text, ms] of cases) assertEquals(parseDuration(text), ms, text);
});

Deno.test("parseDuration refuses values without a known unit, naming the value and the form", () => {
  for (const bad of ["", "5", "soon", "5x", "-5s", "5 s", "s", "1m30", "5sec", " 5s"]) {
    const err = assertThrows(() => parseDuration(bad), RangeError);
    assert(
      err.message.includes(JSON.stringify(bad)),
      `names ${JSON.stringify(bad)}: ${err.message}`,
    );
    assert(err.message.includes("e.g. 500ms, 5s, 1m30s, 2h"), err.message);
  }
});

Deno.test("a failed parse does not leave state behind for the next one", () => {
  assertThrows(() => parseDuration("1m30"), RangeError);
  assertEquals(parseDuration("45s"), 45_000);
});

Deno.test("formatDuration writes compact Go-style text", () => {
  const cases: Array<[number, string]> = [
    [0, "0"],
    [250, "250ms"],
    [1_500, "1500ms"],
    [5_000, "5s"],
    [60_000, "1m"],
    [90_000, "1m30s"],
    [7_200_000, "2h"],
    [3_601_000, "1h1s"],
  ];
  for (const [ms, text] of cases) assertEquals(formatDuration(ms), text, String(ms));
});

Deno.test("formatDuration output parses back to the same duration", () => {
  for (const ms of [0, 1, 999, 1_000, 61_000, 3_723_000, 86_400_000]) {
    assertEquals(parseDuration(formatDuration(ms)), ms);
  }
});
