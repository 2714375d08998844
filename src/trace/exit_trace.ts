/**
 * Per-exit timestamps through the agent, for finding where an exit's answer spends its
 * time (issue 14): when containerd's TaskExit bytes reached the event stream and were
 * decoded, when the shim's Wait answered, when the exit was dispatched to its sandbox's
 * queue, its job started, its commit was asked for, its group commit ran (and how many
 * writes shared it), its waiters were woken, and each Wait answer was written.
 *
 * Off unless the agent runs with PODSANDBOXD_EXIT_TRACE=1: then nothing else changes on
 * the hot path — each stage costs a clock read and a map update, and the traces are kept
 * in memory (at most MAX_TRACES) and written to the log, one line per exit, once no exit
 * has been traced for QUIET_MS, when the buffer is full, and when the agent stops. Off,
 * the layers hold no tracer and take no timestamps.
 *
 * Times are wall-clock milliseconds (`performance.timeOrigin + performance.now()`),
 * comparable with another process's on the same host.
 *
 * @module
 */
import type { ContainerdEvent } from "../containerd/types.ts";
import { logger } from "../log.ts";
import { wallNow } from "../time.ts";

/** The environment variable that turns tracing on ("1"). */
export const EXIT_TRACE_ENV = "PODSANDBOXD_EXIT_TRACE";
/** Exits kept before the traces are written out early. @default 10_000 */
export const MAX_TRACES = 10_000;
/** Traces are written once no stage was stamped for this long. @default 1_000 */
export const QUIET_MS = 1_000;

/** Where an exit was learned, as traced. */
export type TracedSource = "event" | "shim";

/**
 * A stage of one source's handling of an exit: `received` is when the bytes reached
 * the agent (event: grpc-js handed the message over; shim: its Wait answered),
 * `decoded` (events only) after the envelope was decoded and read off the stream.
 */
export type SourceStage = "received" | "decoded" | "dispatched" | "job" | "commit" | "committed";

/** What the layers call; every stage's first stamp stands. */
export interface ExitTraceHooks {
  /** `stage` of `source`'s handling of the exit of `key` ("namespace/id") happened `at`. */
  stage(key: string, source: TracedSource, stage: SourceStage, at?: number): void;
  /** `source`'s commit recorded the exit (it won): the last group commit of `key` is its. */
  recorded(key: string, source: TracedSource, at?: number): void;
  /** A commit of `keys` ran from `startedAt` to `endedAt` (group of `keys.length`). */
  group(keys: readonly string[], startedAt: number, endedAt: number): void;
  /** The waiters of `key` were woken. */
  notified(key: string, at?: number): void;
  /** A Wait answer for `key` was handed to the connection. */
  answered(key: string, at?: number): void;
}

/** One exit's line: offsets in ms from `t0`, the first stamp of the exit. */
export interface ExitTraceLine {
  key: string;
  /** The source whose commit recorded the exit. */
  won: TracedSource;
  /** Wall-clock ms of the first stamp. */
  t0: number;
  /** Stage name ("event.received", "shim.job", "group.start", "notified", …) → ms after t0. */
  ms: Record<string, number>;
  /** Writes that shared the exit's commit. */
  groupSize?: number;
  /** Wait answers written (the first is in `ms.answered`). */
  answers: number;
}

interface Entry {
  key: string;
  stamps: Map<string, number>;
  won?: TracedSource;
  /** The latest commit that held the exit's write; frozen once an exit is recorded. */
  group?: { startedAt: number; endedAt: number; size: number };
  answers: number;
}

const log = logger("trace");

export class ExitTrace implements ExitTraceHooks {
  readonly #entries = new Map<string, Entry>();
  readonly #max: number;
  readonly #write: (line: ExitTraceLine) => void;
  readonly #quietMs: number;
  /** Wall-clock ms of the latest stamp; the quiet timer, while traces wait to be written. */
  #last = 0;
  #timer?: ReturnType<typeof setTimeout>;

  /**
   * @param write where each line goes (default: the log, at info)
   * @param quietMs traces are written once no stage was stamped for this long (0: only
   * when flushed or full)
   */
  constructor(
    options: { max?: number; quietMs?: number; write?: (line: ExitTraceLine) => void } = {},
  ) {
    this.#max = options.max ?? MAX_TRACES;
    this.#quietMs = options.quietMs ?? QUIET_MS;
    this.#write = options.write ?? ((line) => log.info("exit trace {key}", { ...line }));
  }

  /** A tracer when PODSANDBOXD_EXIT_TRACE=1, else undefined (tracing off). */
  static fromEnv(env: (name: string) => string | undefined): ExitTrace | undefined {
    const value = env(EXIT_TRACE_ENV);
    return value === "1" || value === "true" ? new ExitTrace() : undefined;
  }

  /** The containerd client's hook: a TaskExit of an init process, received and decoded. */
  eventReceived(event: ContainerdEvent, receivedAt: number, decodedAt: number): void {
    if (event.kind !== "task-exit" || event.processId !== event.containerId) return;
    const key = `${event.namespace}/${event.containerId}`;
    this.stage(key, "event", "received", receivedAt);
    this.stage(key, "event", "decoded", decodedAt);
  }

  stage(key: string, source: TracedSource, stage: SourceStage, at = wallNow()): void {
    const stamps = this.#entry(key).stamps;
    const name = `${source}.${stage}`;
    if (!stamps.has(name)) stamps.set(name, at);
    this.#last = Math.max(this.#last, at);
  }

  recorded(key: string, source: TracedSource, at = wallNow()): void {
    const entry = this.#entry(key);
    this.stage(key, source, "committed", at);
    if (!entry.won) entry.won = source;
  }

  group(keys: readonly string[], startedAt: number, endedAt: number): void {
    for (const key of keys) {
      // Only exits being traced: other writes (records of running sandboxes) start none.
      const entry = this.#entries.get(key);
      if (entry && !entry.won) entry.group = { startedAt, endedAt, size: keys.length };
    }
  }

  notified(key: string, at = wallNow()): void {
    const stamps = this.#entries.get(key)?.stamps;
    if (stamps && !stamps.has("notified")) stamps.set("notified", at);
    this.#last = Math.max(this.#last, at);
  }

  answered(key: string, at = wallNow()): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    entry.answers++;
    if (!entry.stamps.has("answered")) entry.stamps.set("answered", at);
    this.#last = Math.max(this.#last, at);
  }

  /** Exits traced so far and not yet written. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Writes one line per recorded exit and forgets them; traces of exits not recorded
   * (a TaskExit of a container that is no sandbox, a commit still under way) are dropped
   * and counted in a last line.
   */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    let dropped = 0;
    for (const entry of this.#entries.values()) {
      if (entry.won) this.#write(lineOf(entry, entry.won));
      else dropped++;
    }
    this.#entries.clear();
    if (dropped > 0) {
      log.info("exit trace: {count} traces without a recorded exit were dropped", {
        count: dropped,
      });
    }
  }

  #entry(key: string): Entry {
    let entry = this.#entries.get(key);
    if (!entry) {
      if (this.#entries.size >= this.#max) this.flush();
      entry = { key, stamps: new Map(), answers: 0 };
      this.#entries.set(key, entry);
      if (this.#timer === undefined && this.#quietMs > 0) this.#arm(this.#quietMs);
    }
    return entry;
  }

  /** Writes the traces once nothing was stamped for quietMs; never keeps the process up. */
  #arm(ms: number): void {
    const timer = setTimeout(() => {
      this.#timer = undefined;
      const quiet = wallNow() - this.#last;
      if (quiet >= this.#quietMs) this.flush();
      else this.#arm(this.#quietMs - quiet);
    }, ms);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }
}

function lineOf(entry: Entry, won: TracedSource): ExitTraceLine {
  const stamps = new Map(entry.stamps);
  if (entry.group) {
    stamps.set("group.start", entry.group.startedAt);
    stamps.set("group.end", entry.group.endedAt);
  }
  const t0 = Math.min(...stamps.values());
  const ms: Record<string, number> = {};
  for (const [name, at] of stamps) ms[name] = Math.round((at - t0) * 1000) / 1000;
  return {
    key: entry.key,
    won,
    t0: Math.round(t0 * 1000) / 1000,
    ms,
    groupSize: entry.group?.size,
    answers: entry.answers,
  };
}
