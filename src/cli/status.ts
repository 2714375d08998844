import { CLIENT_FLAGS, clientFlagsHelp, clientFromFlags, sandboxIdArg } from "./client_options.ts";
import { type Command, parseCommandArgs } from "./command.ts";
import { printJson, sandboxJson, sandboxText, warnIfStale } from "./output.ts";

export const statusCommand: Command = {
  name: "status",
  summary: "print the record of a sandbox",
  help: `Usage: podsandboxd status ID [options]

Prints what the agent knows of sandbox ID: state, pid, creation and exit time, exit
status and how it was learned.

Options:
${clientFlagsHelp()}
  -h, --help        show this help

JSON: {"id","namespace","state","pid","createdAt","exitedAt","exitStatus",...}; absent
fields are omitted.`,
  async run(args) {
    const parsed = parseCommandArgs(this, args, CLIENT_FLAGS, {
      min: 1,
      max: 1,
      names: "sandbox ID",
    });
    if (!parsed) return 0;
    const id = sandboxIdArg(parsed.positionals[0]);
    const client = clientFromFlags(parsed.values);
    try {
      const { sandbox, agent } = await client.describe(id);
      warnIfStale(agent);
      if (parsed.values.json) printJson(sandboxJson(sandbox));
      else console.log(sandboxText(sandbox));
      return 0;
    } finally {
      client.close();
    }
  },
};
