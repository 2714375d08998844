import { VERSION } from "../version.ts";
import { type Command, parseCommandArgs } from "./command.ts";
import { printJson } from "./output.ts";

export const versionCommand: Command = {
  name: "version",
  summary: "print the agent's and Deno's versions",
  help: `Usage: podsandboxd version [--json]

Options:
  --json      print one JSON document
  -h, --help  show this help`,
  run(args) {
    const parsed = parseCommandArgs(this, args, { json: { type: "boolean" } }, { min: 0, max: 0 });
    if (!parsed) return Promise.resolve(0);
    const info = { version: VERSION, deno: Deno.version.deno, v8: Deno.version.v8 };
    if (parsed.values.json) printJson(info);
    else console.log(`podsandboxd ${info.version} (deno ${info.deno}, v8 ${info.v8})`);
    return Promise.resolve(0);
  },
};
