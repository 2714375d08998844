/**
 * The shape of a CLI command and argument parsing shared by all of them.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

export interface Command {
  name: string;
  summary: string;
  /** Full --help text. */
  help: string;
  /** Returns the process exit code. */
  run(args: string[]): Promise<number>;
}

/** A bad command line: exit code 2, message plus a pointer to --help. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/**
 * Parses `args` for `command`; returns null after printing help for --help/-h.
 * Throws UsageError for unknown flags, missing values and wrong positional counts.
 */
export function parseCommandArgs(
  command: Pick<Command, "name" | "help">,
  args: string[],
  options: NonNullable<ParseArgsConfig["options"]>,
  positionals: { min: number; max: number; names?: string },
): Parsed | null {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (parsed.values.help) {
    console.log(command.help);
    return null;
  }
  const n = parsed.positionals.length;
  if (n < positionals.min) {
    throw new UsageError(`missing ${positionals.names ?? "argument"}`);
  }
  if (n > positionals.max) {
    throw new UsageError(
      `unexpected argument ${JSON.stringify(parsed.positionals[positionals.max])}`,
    );
  }
  return parsed as Parsed;
}
