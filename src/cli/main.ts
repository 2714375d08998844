/**
 * The podsandboxd command line: dispatches to one command per file.
 *
 * @module
 */
import { StatusError } from "../errors.ts";
import { type Command, UsageError } from "./command.ts";
import { configCommand } from "./config.ts";
import { healthCommand } from "./health.ts";
import { watchCommand } from "./watch.ts";
import { listCommand } from "./list.ts";
import { platformCommand } from "./platform.ts";
import { MissingPermissionError } from "./preflight.ts";
import { serveCommand } from "./serve.ts";
import { statusCommand } from "./status.ts";
import { versionCommand } from "./version.ts";
import { waitCommand } from "./wait.ts";

export const COMMANDS: readonly Command[] = [
  serveCommand,
  waitCommand,
  statusCommand,
  listCommand,
  watchCommand,
  healthCommand,
  platformCommand,
  configCommand,
  versionCommand,
];

export function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return `podsandboxd: a node agent that records every pod sandbox exit and answers wait/status

Usage: podsandboxd <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join("\n")}

Run "podsandboxd <command> --help" for a command's options.`;
}

/** Runs the CLI; returns the exit code (0 ok, 1 error, 2 usage). */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === "--help" || name === "-h" || name === "help") {
    console.log(usage());
    return 0;
  }
  if (name === undefined) {
    console.error(usage());
    return 2;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    console.error(`podsandboxd: unknown command ${JSON.stringify(name)}\n\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(
        `podsandboxd ${name}: ${err.message}\nRun "podsandboxd ${name} --help" for usage.`,
      );
      return 2;
    }
    if (err instanceof MissingPermissionError) {
      console.error(`podsandboxd ${name}: ${err.message}`);
      return 2;
    }
    const message = err instanceof StatusError || err instanceof Error ? err.message : String(err);
    console.error(`podsandboxd ${name}: ${message}`);
    return 1;
  }
}
