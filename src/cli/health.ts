import { CLIENT_FLAGS, clientFlagsHelp, clientFromFlags } from "./client_options.ts";
import { type Command, parseCommandArgs } from "./command.ts";
import { printJson } from "./output.ts";

export const healthCommand: Command = {
  name: "health",
  summary: "check the agent's health (exit 0 when serving): for systemd or kubelet probes",
  help: `Usage: podsandboxd health [options]

Asks the agent's grpc.health.v1 service. The agent is SERVING only while it is connected
to containerd and caught up with it.

Options:
${clientFlagsHelp()}
  -h, --help        show this help

Exit codes: 0 SERVING; 1 NOT_SERVING or the agent cannot be reached; 2 usage error.
JSON: {"status"}`,
  async run(args) {
    const parsed = parseCommandArgs(this, args, CLIENT_FLAGS, { min: 0, max: 0 });
    if (!parsed) return 0;
    const client = clientFromFlags(parsed.values);
    try {
      const status = await client.health();
      if (parsed.values.json) printJson({ status });
      else console.log(status);
      return status === "SERVING" ? 0 : 1;
    } finally {
      client.close();
    }
  },
};
