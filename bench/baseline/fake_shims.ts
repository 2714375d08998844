/**
 * Fake shims for the shim-wait cost benchmark: one small ttrpc server per sandbox, laid
 * out in a containerd state directory as containerd 1.6/1.7 lays out its shims — the
 * task bundle `<state>/io.containerd.runtime.v2.task/<namespace>/<id>/address` naming
 * `unix://<state>/s/<n>` — so the agent's --containerd-state finds them. Each answers
 * `containerd.task.v2.Task/Wait` only when told the sandbox exited.
 *
 * Usage: fake_shims.ts STATE_DIR NAMESPACE IDS_FILE (one id a line). Prints
 * `{"ready":true}` once every shim listens, then `{"waits":N}` whenever the number of
 * Waits received changes (at most every 50 ms). Reads commands from stdin: `exit ID
 * STATUS` answers the Waits of ID. Runs until SIGTERM (or stdin closes).
 *
 * @module
 */
import { join } from "node:path";
import { WaitResponse } from "../../src/gen/containerd/runtime/task/shim.ts";
import { TASK_BUNDLES_DIR } from "../../src/config/defaults.ts";
import { TestTtrpcServer } from "../../tests/harness/ttrpc_server.ts";

const [stateDir, namespace, idsFile] = Deno.args;
const ids = (await Deno.readTextFile(idsFile)).split("\n").filter(Boolean);
const encoder = new TextEncoder();
const print = (line: unknown) => Deno.stdout.writeSync(encoder.encode(JSON.stringify(line) + "\n"));

const sockets = join(stateDir, "s");
await Deno.mkdir(sockets, { recursive: true });
const exits = new Map<string, PromiseWithResolvers<number>>();
let waits = 0;
const servers = await Promise.all(ids.map(async (id, n) => {
  const bundle = join(stateDir, TASK_BUNDLES_DIR, namespace, id);
  await Deno.mkdir(bundle, { recursive: true });
  const socket = join(sockets, String(n));
  await Deno.writeTextFile(join(bundle, "address"), `unix://${socket}`);
  exits.set(id, Promise.withResolvers<number>());
  return TestTtrpcServer.start(socket, {
    "containerd.task.v2.Task/Wait": async () => {
      waits++;
      const status = await exits.get(id)!.promise;
      const now = Date.now();
      return {
        payload: WaitResponse.encode({
          exitStatus: status,
          exitedAt: { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1e6 },
        }).finish(),
      };
    },
  });
}));
print({ ready: true });

let reported = -1;
const reporter = setInterval(() => {
  if (waits !== reported) print({ waits: reported = waits });
}, 50);
const stop = async () => {
  clearInterval(reporter);
  await Promise.all(servers.map((s) => s.close()));
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", stop);
let buffer = "";
for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const [command, id, status] = buffer.slice(0, nl).trim().split(" ");
    buffer = buffer.slice(nl + 1);
    if (command === "exit") exits.get(id)?.resolve(Number(status));
  }
}
await stop();
