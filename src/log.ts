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

/** Sends log records to stderr. Writes are synchronous so nothing is lost on a crash. */
export async function setupLogging(options: LoggingOptions): Promise<void> {
  const json = options.json ?? !Deno.stderr.isTerminal();
  const format = json
    ? jsonLine
    : getTextFormatter({ timestamp: "date-time-timezone", value: renderValue });
  const encoder = new TextEncoder();
  const sink = (record: LogRecord) => {
    const line = format(record);
    try {
      Deno.stderr.writeSync(encoder.encode(line));
    } catch {
      // stderr gone (closed pipe): nothing sensible left to do with the line.
    }
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

/** Drops the configuration (tests that configure logging call it when done). */
export async function resetLogging(): Promise<void> {
  await reset();
}
