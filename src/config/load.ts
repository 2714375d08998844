/**
 * Loads the serve configuration: the optional TOML file, the environment and the flags,
 * resolved in one place (serve_options.ts).
 *
 * @module
 */
import { parse as parseToml } from "smol-toml";
import type { Env } from "./defaults.ts";
import { envName, type ResolvedServeConfig, resolveServeConfig } from "./serve_options.ts";

/** Read when present; `--config` (or PODSANDBOXD_CONFIG) names another file, which must exist. */
export const DEFAULT_CONFIG_FILE = "/etc/podsandboxd/config.toml";

export interface LoadedServeConfig extends ResolvedServeConfig {
  /** The config file read, if any. */
  file?: string;
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

/** Resolves the configuration for `serve` (and `config`) from flags, environment and file. */
export async function loadServeConfig(
  flags: Record<string, string | string[] | boolean | undefined>,
  env: Env,
): Promise<LoadedServeConfig> {
  const explicit = (flags.config as string | undefined) ?? env(envName("config"));
  const file = await readConfigFile(explicit ?? DEFAULT_CONFIG_FILE, explicit !== undefined);
  return { ...resolveServeConfig({ flags, env, file }), file: file?.path };
}
