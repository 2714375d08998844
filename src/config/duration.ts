/**
 * Go-style durations ("500ms", "5s", "1m30s", "2h") for flags and config.
 *
 * @module
 */

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/** Milliseconds of a duration; throws RangeError naming the value and the accepted form. */
export function parseDuration(text: string): number {
  const bad = () =>
    new RangeError(
      `invalid duration ${
        JSON.stringify(text)
      }: use a number with a unit, e.g. 500ms, 5s, 1m30s, 2h`,
    );
  if (text === "0") return 0;
  if (text === "") throw bad();
  let total = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const m = PART.exec(text);
    if (!m) throw bad();
    total += Number(m[1]) * UNITS[m[2]];
  }
  if (!Number.isFinite(total)) throw bad();
  return total;
}

/** A compact duration for messages ("1m30s", "250ms"). */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0";
  if (ms < 1_000 || ms % 1_000 !== 0) return `${ms}ms`;
  let s = ms / 1_000;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s ? `${s}s` : ""}`;
}
