/**
 * The launcher behind `deno task podsandboxd` and `deno task start`: resolves what the
 * command line's configuration needs and runs the CLI (main.ts) with exactly those Deno
 * permissions — never -A — in its place (stdio, signals and exit status passed through).
 *
 * Leading launcher options, before the command: `--deno-flag=FLAG` (repeatable) passes a
 * flag to the agent's `deno run` (e.g. --cpu-prof).
 *
 * @module
 */
import { DEFAULT_CONFIG_FILE } from "../config/load.ts";
import { permissionFlags, permissionSet } from "../permissions/flags.ts";
import { runChild } from "./child.ts";
import { launcherPermissionFlags, planLaunch } from "./plan.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
export const MAIN = `${ROOT}main.ts`;
export const LAUNCHER = `${ROOT}launch.ts`;
export const DENO_CONFIG = `${ROOT}deno.json`;

const DENO_FLAG = "--deno-flag=";
/** Marks the launcher's run of itself with a config file readable (never a third). */
const REEXEC = "--launcher-reexec";

/**
 * The deno.json task running the launcher (written there by `deno task docs`). The
 * task's `deno` is the running Deno, whose path the launcher may run: a task cannot name
 * it otherwise.
 */
export function launcherTask(): string {
  const quote = (flag: string) => (/^[\w=,/.:-]+$/.test(flag) ? flag : `"${flag}"`);
  const flags = launcherPermissionFlags(DEFAULT_CONFIG_FILE).map(quote);
  return `deno run ${
    flags.join(" ")
  } "--allow-run=$(deno eval 'console.log(Deno.execPath())')" launch.ts`;
}

/** Runs the CLI for `args` with the permissions it needs; resolves with its exit code. */
export async function launch(args: string[]): Promise<number> {
  const launcherArgs: string[] = [];
  const denoFlags: string[] = [];
  let reexec = false;
  let i = 0;
  for (; i < args.length; i++) {
    if (args[i].startsWith(DENO_FLAG)) {
      denoFlags.push(args[i].slice(DENO_FLAG.length));
      launcherArgs.push(args[i]);
    } else if (args[i] === REEXEC) reexec = true;
    else break;
  }
  const cli = args.slice(i);
  const deno = Deno.execPath();
  try {
    const plan = await planLaunch(cli);
    if ("readConfig" in plan) {
      if (reexec) throw new RangeError(`cannot read the config file ${plan.readConfig}`);
      return await runChild(deno, [
        "run",
        ...launcherPermissionFlags(plan.readConfig),
        `--allow-run=${deno}`,
        LAUNCHER,
        REEXEC,
        ...launcherArgs,
        ...cli,
      ]);
    }
    const flags = permissionFlags(permissionSet(plan.needs));
    return await runChild(deno, [
      "run",
      "--config",
      DENO_CONFIG,
      ...denoFlags,
      ...flags,
      MAIN,
      ...cli,
    ], plan.env);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    console.error(`podsandboxd: ${err.message}`);
    return 2;
  }
}
