import { BUILD_INFO } from "../build_info.ts";
import { VERSION } from "../version.ts";
import { type Command, parseCommandArgs } from "./command.ts";
import { printJson } from "./output.ts";

export const versionCommand: Command = {
  name: "version",
  summary: "print the agent's version, its git commit and Deno's version",
  help: `Usage: podsandboxd version [--json]

Options:
  --json      print one JSON document
  -h, --help  show this help`,
  run(args) {
    const parsed = parseCommandArgs(this, args, { json: { type: "boolean" } }, { min: 0, max: 0 });
    if (!parsed) return Promise.resolve(0);
    const info = {
      version: VERSION,
      commit: BUILD_INFO.commit ?? "unknown",
      builtAt: BUILD_INFO.builtAt,
      deno: Deno.version.deno,
      v8: Deno.version.v8,
    };
    if (parsed.values.json) printJson(info);
    else {
      const commit = BUILD_INFO.commit ?? "unknown (run from source, not a compiled build)";
      console.log(
        `podsandboxd ${info.version}\ncommit ${commit}\ndeno ${info.deno} (v8 ${info.v8})`,
      );
    }
    return Promise.resolve(0);
  },
};
