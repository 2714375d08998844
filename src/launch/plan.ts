/**
 * What the agent process started by the launcher needs, from its command line: the
 * configuration resolved as `serve` resolves it (src/config, the one definition), then
 * the needs of that configuration (src/permissions). A command line the CLI will refuse
 * needs nothing: the CLI itself then says what is wrong.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { clientSocketPath, type Env, processEnv } from "../config/defaults.ts";
import { CONTAINERD_SOCKET_CANDIDATES } from "../config/detect.ts";
import { configFileFor, DETECTED_ADDRESS_ENV, loadServeConfig } from "../config/load.ts";
import { serveParseConfig } from "../config/serve_options.ts";
import { permissionFlags, permissionSet } from "../permissions/flags.ts";
import { clientNeeds, configNeeds, type Need, serveNeeds } from "../permissions/needs.ts";

/** Commands that talk to a running agent on --socket. */
export const CLIENT_COMMANDS: readonly string[] = [
  "wait",
  "status",
  "list",
  "watch",
  "health",
  "platform",
];
/** Commands that resolve the serve configuration. */
export const CONFIG_COMMANDS: readonly string[] = ["serve", "config"];

/**
 * The child's needs (and environment of its own), or: the launcher must first be allowed
 * to read this config file.
 */
export type Plan = { needs: Need[]; env?: Record<string, string> } | { readConfig: string };

type Readable = (path: string) => boolean;
const readableByProcess: Readable = (path) =>
  Deno.permissions.querySync({ name: "read", path }).state === "granted";

/** Plans the agent process for `args` (the CLI's arguments). */
export async function planLaunch(
  args: readonly string[],
  env: Env = processEnv,
  readable: Readable = readableByProcess,
  candidates?: readonly string[],
): Promise<Plan> {
  const [command, ...rest] = args;
  if (CONFIG_COMMANDS.includes(command)) {
    let values;
    try {
      values = parseArgs({
        args: rest,
        options: {
          ...serveParseConfig(),
          json: { type: "boolean" },
          help: { type: "boolean", short: "h" },
        },
        allowPositionals: true,
        strict: true,
      }).values;
    } catch {
      return { needs: [] };
    }
    if (values.help) return { needs: [] };
    const file = configFileFor(values, env).path;
    if (!readable(file)) return { readConfig: file };
    try {
      const loaded = await loadServeConfig(values, env, { candidates });
      const needs = command === "serve" ? serveNeeds(loaded) : configNeeds(loaded);
      if (loaded.candidates === undefined) return { needs };
      // The socket granted is the one detected here: the child must not look again.
      const found = loaded.sources.address === "detected" ? loaded.config.address : "";
      return { needs, env: { [DETECTED_ADDRESS_ENV]: found } };
    } catch (err) {
      // The CLI reads the file too before it refuses the configuration with this error.
      if (err instanceof RangeError) return { needs: configNeeds({ fileLookedFor: file }) };
      throw err;
    }
  }
  if (CLIENT_COMMANDS.includes(command)) {
    const { values } = parseArgs({
      args: rest,
      options: { socket: { type: "string" } },
      allowPositionals: true,
      strict: false,
    });
    const socket = clientSocketPath(
      typeof values.socket === "string" ? values.socket : undefined,
      env,
    );
    return { needs: socket.startsWith("/") ? clientNeeds(socket) : [] };
  }
  return { needs: [] };
}

/**
 * The launcher's own permissions: what reading the configuration takes (the config file,
 * the candidate containerd sockets, the environment, the uid), no write, no net.
 * `deno.json`'s tasks carry these for the default config file; for another one the
 * launcher runs itself again with this file readable.
 */
export function launcherPermissionFlags(configFile: string): string[] {
  return permissionFlags(
    permissionSet(
      configNeeds({ fileLookedFor: configFile, candidates: CONTAINERD_SOCKET_CANDIDATES }),
    ),
  );
}
