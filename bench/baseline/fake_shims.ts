/**
 * Fake shims for the shim-wait cost benchmark: one small ttrpc server per sandbox, laid
 * out in a containerd state directory as containerd 1.6/1.7 lays out its shims — the
 * task bundle `<state>/io.containerd.runtime.v2.task/<namespace>/<id>/address` naming
 * `unix://<state>/s/<n>` — so the agent's --containerd-state finds them. Each holds every
 * `containerd.task.v2.Task/Wait` open: the sandboxes never exit.
 *
 * Usage: fake_shims.ts STATE_DIR NAMESPACE IDS_FILE (one id a line). Prints
 * `{"ready":true}` once every shim listens, then `{"waits":N}` whenever the number of
 * Waits received changes (at most every 50 ms). Runs until SIGTERM or until stdin closes
 * (the benchmark went away).
 *
 * @module
 */
import { join } from "node:path";
import { TASK_BUNDLES_DIR } from "../../src/config/defaults.ts";
import { TestTtrpcServer } from "../../tests/harness/ttrpc_server.ts";

const [stateDir, namespace, idsFile] = Deno.args;
const ids = (await Deno.readTextFile(idsFile)).split("\n").filter(Boolean);
const encoder = new TextEncoder();
const print = (line: unknown) => Deno.stdout.writeSync(encoder.encode(JSON.stringify(line) + "\n"));

const sockets = join(stateDir, "s");
await Deno.mkdir(sockets, { recursive: true });
let waits = 0;
const servers = await Promise.all(ids.map(async (id, n) => {
  const bundle = join(stateDir, TASK_BUNDLES_DIR, namespace, id);
  await Deno.mkdir(bundle, { recursive: true });
  const socket = join(sockets, String(n));
  await Deno.writeTextFile(join(bundle, "address"), `unix://${socket}`);
  return TestTtrpcServer.start(socket, {
    "containerd.task.v2.Task/Wait": () => {
      waits++;
      return new Promise(() => {});
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
for await (const _ of Deno.stdin.readable) {
  // Nothing is read from the benchmark: its end closes stdin.
}
await stop();
