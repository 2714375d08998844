import { formatDuration } from "../config/duration.ts";
import { describeAddress, type MetricsAddress } from "../metrics/server.ts";
import { SERVE_OPTIONS, serveParseConfig } from "../config/serve_options.ts";
import { type Command, parseCommandArgs } from "./command.ts";
import { printJson } from "./output.ts";
import { CONFIG_HELP, loadConfig } from "./serve.ts";

const DURATION_KEYS = new Set(["resyncInterval", "pollInterval", "retention"]);

/** A value as it would be written in the TOML config file (a comment when unset). */
function tomlValue(key: string, value: unknown): string {
  if (DURATION_KEYS.has(key)) return JSON.stringify(formatDuration(value as number));
  if (key === "metricsAddress") return JSON.stringify(describeAddress(value as MetricsAddress));
  return JSON.stringify(value);
}

export const configCommand: Command = {
  name: "config",
  summary: "print the effective serve configuration and where each value came from",
  help: `Usage: podsandboxd config [serve options] [--json]

Resolves the configuration exactly as "podsandboxd serve" would with the same options,
environment and config file, and prints it as TOML with the source of each value (flag,
env, file, detected: containerd's socket found on the node, or default). Bad values and
unknown config file keys are errors (exit 2).

${CONFIG_HELP}
  --json
      print {"file", "values": {NAME: {"value", "source"}}}
  -h, --help
      show this help`,
  async run(args) {
    const parsed = parseCommandArgs(
      this,
      args,
      { ...serveParseConfig(), json: { type: "boolean" } },
      { min: 0, max: 0 },
    );
    if (!parsed) return 0;
    const { config, sources, file } = await loadConfig(parsed.values);
    if (parsed.values.json) {
      printJson({
        file: file ?? null,
        values: Object.fromEntries(SERVE_OPTIONS.map((o) => [o.flag, {
          value: config[o.key],
          source: sources[o.key],
        }])),
      });
      return 0;
    }
    console.log(`# podsandboxd serve configuration (config file: ${file ?? "none"})`);
    for (const o of SERVE_OPTIONS) {
      const value = config[o.key];
      console.log(
        value === undefined
          ? `# ${o.flag}: off  # ${sources[o.key]}`
          : `${o.flag} = ${tomlValue(o.key, value)}  # ${sources[o.key]}`,
      );
    }
    return 0;
  },
};
