import { formatDuration, parseDuration } from "../config/duration.ts";
import { DeadlineExceededError } from "../errors.ts";
import { CLIENT_FLAGS, clientFlagsHelp, clientFromFlags, sandboxIdArg } from "./client_options.ts";
import { type Command, parseCommandArgs, UsageError } from "./command.ts";
import { printJson } from "./output.ts";

export const waitCommand: Command = {
  name: "wait",
  summary: "block until a sandbox exits; print its exit status and time",
  help: `Usage: podsandboxd wait ID [options]

Blocks until sandbox ID exits, then prints its exit status and exit time. Answers at
once for a sandbox that already exited (also after agent or containerd restarts).

Options:
  --timeout DURATION  give up after DURATION (e.g. 30s, 5m); exit 1 when it passes
${clientFlagsHelp()}
  -h, --help          show this help

Exit codes: 0 the sandbox exited (whatever its status); 1 error (unknown id, timeout,
agent unreachable); 2 usage error.
JSON: {"id","exitStatus","exitedAt"}`,
  async run(args) {
    const parsed = parseCommandArgs(this, args, { ...CLIENT_FLAGS, timeout: { type: "string" } }, {
      min: 1,
      max: 1,
      names: "sandbox ID",
    });
    if (!parsed) return 0;
    const id = sandboxIdArg(parsed.positionals[0]);
    let timeoutMs: number | undefined;
    if (parsed.values.timeout !== undefined) {
      try {
        timeoutMs = parseDuration(parsed.values.timeout as string);
      } catch (err) {
        throw new UsageError(`--timeout: ${(err as Error).message}`);
      }
    }
    const client = clientFromFlags(parsed.values);
    try {
      const result = await client.wait(id, { timeoutMs });
      if (parsed.values.json) printJson(result);
      else {console.log(
          `sandbox ${id} exited with status ${result.exitStatus} at ${result.exitedAt}`,
        );}
      return 0;
    } catch (err) {
      if (err instanceof DeadlineExceededError && timeoutMs !== undefined) {
        throw new DeadlineExceededError(
          `wait for sandbox ${id}: still running after ${formatDuration(timeoutMs)} (--timeout)`,
          { cause: err },
        );
      }
      throw err;
    } finally {
      client.close();
    }
  },
};
