import { SandboxState } from "../gen/podsandboxd/v1/podsandboxd.ts";
import { CLIENT_FLAGS, clientFlagsHelp, clientFromFlags } from "./client_options.ts";
import { type Command, parseCommandArgs, UsageError } from "./command.ts";
import { printJson, sandboxJson, sandboxTable, warnIfStale } from "./output.ts";

const STATES: Record<string, SandboxState> = {
  ready: SandboxState.SANDBOX_READY,
  notready: SandboxState.SANDBOX_NOTREADY,
};

export const listCommand: Command = {
  name: "list",
  summary: "list the sandboxes the agent knows",
  help: `Usage: podsandboxd list [options]

Lists the sandboxes of the namespace, running and exited.

Options:
  --state ready|notready  only sandboxes in this state
${clientFlagsHelp()}
  -h, --help              show this help

JSON: an array of status objects.`,
  async run(args) {
    const parsed = parseCommandArgs(this, args, { ...CLIENT_FLAGS, state: { type: "string" } }, {
      min: 0,
      max: 0,
    });
    if (!parsed) return 0;
    const stateText = parsed.values.state as string | undefined;
    const state = stateText === undefined
      ? SandboxState.SANDBOX_STATE_UNSPECIFIED
      : STATES[stateText];
    if (state === undefined) {
      throw new UsageError(
        `--state: invalid value ${JSON.stringify(stateText)}; accepted: ready, notready`,
      );
    }
    const client = clientFromFlags(parsed.values);
    try {
      const { sandboxes, agent } = await client.listWithAgent(state);
      warnIfStale(agent);
      if (parsed.values.json) printJson(sandboxes.map(sandboxJson));
      else console.log(sandboxTable(sandboxes));
      return 0;
    } finally {
      client.close();
    }
  },
};
