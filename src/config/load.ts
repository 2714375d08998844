/**
 * Loads the serve configuration: the optional TOML file, the environment and the flags,
 * resolved in one place (serve_options.ts).
 *
 * @module
 */
import { parse as parseToml } from "smol-toml";
import type { Env } from "./defaults.ts";
import { CONTAINERD_SOCKET_CANDIDATES, detectContainerdSocket, layoutFor } from "./detect.ts";
import { envName, type ResolvedServeConfig, resolveServeConfig } from "./serve_options.ts";

/** Read when present; `--config` (or PODSANDBOXD_CONFIG) names another file, which must exist. */
export const DEFAULT_CONFIG_FILE = "/etc/podsandboxd/config.toml";

export interface LoadedServeConfig extends ResolvedServeConfig {
  /** The config file read, if any. */
  file?: string;
  /** The config file looked for: --config, PODSANDBOXD_CONFIG or the default (may be absent). */
  fileLookedFor: string;
  /** With no --address configured: the sockets tried, in order (the address is the first found). */
  candidates?: readonly string[];
}

/**
 * Set by the launcher for the agent it starts: the socket its own detection found ("":
 * none). The agent uses it instead of looking again, so it connects to the socket it was
 * granted even when another candidate appeared in between.
 */
export const DETECTED_ADDRESS_ENV = "PODSANDBOXD_DETECTED_ADDRESS";

export interface LoadOptions {
  /** Sockets tried when no --address is configured (tests pass their own). */
  candidates?: readonly string[];
}

/** The config file to read: --config, else PODSANDBOXD_CONFIG, else the default. */
export function configFileFor(
  flags: Record<string, unknown>,
  env: Env,
): { path: string; explicit: boolean } {
  const explicit = (flags.config as string | undefined) ?? env(envName("config"));
  return { path: explicit ?? DEFAULT_CONFIG_FILE, explicit: explicit !== undefined };
}

/** Reads and parses a config file; RangeError naming the file on any problem. */
async function readConfigFile(path: string, required: boolean) {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound && !required) return undefined;
    throw new RangeError(`config file ${path}: ${err instanceof Error ? err.message : err}`);
  }
  try {
    return { path, values: parseToml(text) as Record<string, unknown> };
  } catch (err) {
    throw new RangeError(
      `config file ${path}: not valid TOML: ${
        err instanceof Error ? err.message.split("\n")[0] : err
      }`,
    );
  }
}

/**
 * Resolves the configuration for `serve` (and `config`) from flags, environment and file;
 * with no --address in any of them, the first existing candidate socket (source
 * "detected"), else the default.
 */
export async function loadServeConfig(
  flags: Record<string, string | string[] | boolean | undefined>,
  env: Env,
  options: LoadOptions = {},
): Promise<LoadedServeConfig> {
  const wanted = configFileFor(flags, env);
  const file = await readConfigFile(wanted.path, wanted.explicit);
  const resolved = resolveServeConfig({ flags, env, file });
  const loaded: LoadedServeConfig = { ...resolved, file: file?.path, fileLookedFor: wanted.path };
  if (resolved.sources.address === "default") {
    loaded.candidates = options.candidates ?? CONTAINERD_SOCKET_CANDIDATES;
    const handed = env(DETECTED_ADDRESS_ENV);
    const found = handed === undefined
      ? await detectContainerdSocket(loaded.candidates)
      : handed || undefined;
    if (found !== undefined) {
      resolved.config.address = found;
      resolved.sources.address = "detected";
    }
  }
  // The directories that go with a known containerd socket (k3s's with k3s's…).
  const layout = layoutFor(resolved.config.address);
  for (const key of ["containerdState", "containerdRoot"] as const) {
    const dir = layout?.[key === "containerdState" ? "state" : "root"];
    if (resolved.sources[key] === "default" && dir !== undefined && dir !== resolved.config[key]) {
      resolved.config[key] = dir;
      resolved.sources[key] = "detected";
    }
  }
  return loaded;
}
