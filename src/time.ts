/**
 * Instants as RFC 3339 strings with nanoseconds ("2026-11-27T10:58:57.123456789Z"),
 * the form records keep and the CLI prints. containerd's Timestamps carry nanoseconds,
 * which a Date would lose. Fixed width, so strings compare in time order.
 *
 * @module
 */

/** google.protobuf.Timestamp as the generated code shapes it. */
export interface Timestamp {
  seconds: number;
  nanos: number;
}

/** Seconds of Go's zero time 0001-01-01T00:00:00Z, which containerd sends for "never". */
const GO_ZERO_SECONDS = -62135596800;

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** True when a Timestamp is absent or is the zero/Go-zero time. */
export function isUnsetTimestamp(ts: Timestamp | undefined): boolean {
  if (!ts) return true;
  return (ts.seconds === 0 && ts.nanos === 0) || ts.seconds <= GO_ZERO_SECONDS;
}

function format(seconds: number, nanos: number): string {
  const base = new Date(seconds * 1000).toISOString().slice(0, 19);
  return `${base}.${String(nanos).padStart(9, "0")}Z`;
}

/** Seconds of 9999-12-31T23:59:59Z, the last instant RFC 3339 can write. */
const MAX_SECONDS = 253402300799;

/** A Timestamp RFC 3339 can express: whole seconds in years 1-9999, nanos below 1e9. */
function isExpressible(ts: Timestamp): boolean {
  return Number.isInteger(ts.seconds) && Number.isInteger(ts.nanos) &&
    ts.seconds > GO_ZERO_SECONDS && ts.seconds <= MAX_SECONDS && ts.nanos >= 0 && ts.nanos < 1e9;
}

/**
 * Formats a Timestamp; undefined for absent/zero ones and for ones no real clock gives
 * (out of range), which callers treat as "no usable time".
 */
export function formatTimestamp(ts: Timestamp | undefined): string | undefined {
  if (isUnsetTimestamp(ts) || !isExpressible(ts!)) return undefined;
  return format(ts!.seconds, ts!.nanos);
}

/** Parses an RFC 3339 instant; throws RangeError naming the bad value. */
export function parseInstant(text: string): Timestamp {
  const bad = () => new RangeError(`invalid RFC 3339 time ${JSON.stringify(text)}`);
  const m = RFC3339.exec(text);
  if (!m) throw bad();
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) throw bad();
  // Date.parse rolls impossible fields over (Feb 30 -> Mar 2, 24:00 -> next day): refuse them.
  if (new Date(Date.parse(`${m[1]}Z`)).toISOString().slice(0, 19) !== m[1]) throw bad();
  return { seconds: Math.floor(ms / 1000), nanos: Number((m[2] ?? "").padEnd(9, "0")) };
}

/** The Timestamp of an instant string (for the wire). */
export function toTimestamp(text: string | undefined): Timestamp | undefined {
  return text === undefined ? undefined : parseInstant(text);
}

/** An instant string from a Date (millisecond precision); the epoch is a real instant here. */
export function instantFromDate(date: Date): string {
  const ms = date.getTime();
  return format(Math.floor(ms / 1000), (ms % 1000 + 1000) % 1000 * 1e6);
}

/** Milliseconds since the epoch of an instant string. */
export function instantToMillis(text: string): number {
  const { seconds, nanos } = parseInstant(text);
  return seconds * 1000 + nanos / 1e6;
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
