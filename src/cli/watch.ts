import { CLIENT_FLAGS, clientFlagsHelp, clientFromFlags } from "./client_options.ts";
import { type Command, parseCommandArgs } from "./command.ts";
import { printJson, sandboxJson } from "./output.ts";

export const watchCommand: Command = {
  name: "watch",
  summary: "print record changes as they happen (one line each) until interrupted",
  help: `Usage: podsandboxd watch [--snapshot] [options]

Streams changes of the sandbox records: a sandbox discovered, READY, exited, its container
removed, its record expired. For scripts that react to exits.

Options:
  --snapshot        first print every current record
${clientFlagsHelp()}
  -h, --help        show this help

With --json each line is one JSON document: a status object plus "event" ("snapshot",
"changed" or "removed").`,
  async run(args) {
    const parsed = parseCommandArgs(
      this,
      args,
      { ...CLIENT_FLAGS, snapshot: { type: "boolean" } },
      { min: 0, max: 0 },
    );
    if (!parsed) return 0;
    const client = clientFromFlags(parsed.values);
    const stop = new AbortController();
    const onSignal = () => stop.abort();
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
    try {
      const events = client.watch({ snapshot: !!parsed.values.snapshot, signal: stop.signal });
      for await (const event of events) {
        if (!event.sandbox) continue;
        const kind = event.removed ? "removed" : event.snapshot ? "snapshot" : "changed";
        const json = sandboxJson(event.sandbox);
        if (parsed.values.json) printJson({ event: kind, ...json });
        else {
          const exit = json.exitStatus === undefined ? "" : ` exit=${json.exitStatus}`;
          console.log(
            `${kind} ${json.id} ${json.state}${json.pid ? ` pid=${json.pid}` : ""}${exit}`,
          );
        }
      }
      return 0;
    } catch (err) {
      if (stop.signal.aborted) return 0;
      throw err;
    } finally {
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
      client.close();
    }
  },
};
