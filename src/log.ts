/**
 * Logging through LogTape: structured records, JSON lines on stderr when it is not a
 * terminal (journald, files, pipes), readable text on a terminal. Libraries get their
 * logger with `logger("controller")`; only the CLI configures sinks.
 *
 * @module
 */
import {
  configure,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
} from "@logtape/logtape";

export type { Logger, LogLevel };

export const LOG_LEVELS: readonly LogLevel[] = [
  "trace",
  "debug",
  "info",
  "warning",
  "error",
  "fatal",
];

/** The logger of one part of the agent, e.g. logger("controller"). */
export function logger(...category: string[]): Logger {
  return getLogger(["podsandboxd", ...category]);
}

export interface LoggingOptions {
  level: LogLevel;
  /** JSON lines instead of text. @default !Deno.stderr.isTerminal() */
  json?: boolean;
}

/** Strings read better unquoted in a message; other values as Deno shows them. */
function renderValue(value: unknown): string {
  return typeof value === "string" ? value : Deno.inspect(value, { compact: true, colors: false });
}

/** One JSON object per line: time, level, logger, the rendered message, the properties. */
function jsonLine(record: LogRecord): string {
  const message = record.message.map((part, i) => (i % 2 ? renderValue(part) : part)).join("");
  return JSON.stringify({
    "@timestamp": new Date(record.timestamp).toISOString(),
    level: record.level.toUpperCase(),
    logger: record.category.join("."),
    message,
    properties: record.properties,
  }) + "\n";
}

/** Records at or above this level are written at once (see setupLogging). */
const WRITTEN_AT_ONCE: ReadonlySet<LogLevel> = new Set(["warning", "error", "fatal"]);
/**
 * How long info and debug records wait to be written together: past the current turn
 * and the HTTP/2 sends it scheduled (node:http2 flushes with setImmediate, which a zero
 * timer can precede). @default 10
 */
export const LOG_BATCH_MS = 10;

/**
 * Sends log records to stderr. Warnings and errors are written at once, synchronously,
 * so none is lost on a crash. Info and debug records are formatted and written together
 * LOG_BATCH_MS after the first of them, in one write: a burst of 100 exits logs its 100
 * lines after their waiters were answered instead of formatting and writing one on each
 * exit's way to its answer (a crash loses at most those 10 ms of info lines; the exits
 * themselves are committed). A warning writes the pending lines first (order is kept);
 * flushLogs() writes them at once.
 */
export async function setupLogging(options: LoggingOptions): Promise<void> {
  const json = options.json ?? !Deno.stderr.isTerminal();
  const format = json
    ? jsonLine
    : getTextFormatter({ timestamp: "date-time-timezone", value: renderValue });
  const encoder = new TextEncoder();
  const write = (text: string) => {
    try {
      const bytes = encoder.encode(text);
      for (let off = 0; off < bytes.length;) off += Deno.stderr.writeSync(bytes.subarray(off));
    } catch {
      // stderr gone (closed pipe): nothing sensible left to do with the lines.
    }
  };
  let pending: LogRecord[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  flushPending = () => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const records = pending;
    pending = [];
    write(records.map(format).join(""));
  };
  const sink = (record: LogRecord) => {
    if (WRITTEN_AT_ONCE.has(record.level)) {
      flushPending();
      write(format(record));
      return;
    }
    pending.push(record);
    timer ??= setTimeout(flushPending, LOG_BATCH_MS);
  };
  await configure({
    reset: true,
    sinks: { stderr: sink },
    loggers: [
      { category: ["podsandboxd"], lowestLevel: options.level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
}

/** The configured sink's flush; global like LogTape's own configuration, which it mirrors. */
let flushPending = () => {};

/** Writes the log lines still waiting to be batched (before the process exits). */
export function flushLogs(): void {
  flushPending();
}

/** Drops the configuration (tests that configure logging call it when done). */
export async function resetLogging(): Promise<void> {
  flushPending();
  flushPending = () => {};
  await reset();
}
