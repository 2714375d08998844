import { CLIENT_FLAGS, clientFlagsHelp, clientFromFlags, sandboxIdArg } from "./client_options.ts";
import { type Command, parseCommandArgs } from "./command.ts";
import { printJson } from "./output.ts";

export const platformCommand: Command = {
  name: "platform",
  summary: "print the node's platform (OS/architecture/variant), as the agent reports it",
  help: `Usage: podsandboxd platform [ID] [options]

Prints the platform the agent reports for sandboxes (containerd's sandbox
Controller.Platform). With ID, the sandbox must be known to the agent.

Options:
${clientFlagsHelp()}
  -h, --help        show this help

JSON: {"os","architecture","variant"}`,
  async run(args) {
    const parsed = parseCommandArgs(this, args, CLIENT_FLAGS, { min: 0, max: 1 });
    if (!parsed) return 0;
    const id = parsed.positionals[0] === undefined ? "" : sandboxIdArg(parsed.positionals[0]);
    const client = clientFromFlags(parsed.values);
    try {
      const p = await client.platform(id);
      if (parsed.values.json) printJson(p);
      else console.log([p.os, p.architecture, p.variant].filter(Boolean).join("/"));
      return 0;
    } finally {
      client.close();
    }
  },
};
