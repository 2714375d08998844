/**
 * The latency benchmark's observers, each in a process of its own so that neither the
 * benchmark's waiters nor each other delay what they see:
 *
 * - `events SOCKET NAMESPACE`: the floor, a raw subscriber of containerd's TaskExit and
 *   TaskDelete events (grpc-js and the agent's decoder, no store);
 * - `poll SOCKET NAMESPACE N`: N pollers that list tasks and sleep 1 s between listings
 *   (the kubelet's generic PLEG relist), their first listings 1/N s apart.
 *
 * Prints `{"ready":true}` once live (the subscription's marker came back; every poller
 * listed once), then one JSON line per first sighting, wall-clock ms:
 * `{"kind":"exit"|"delete"|"seen","id","at","exitedAt","poller"?}`. Runs until SIGTERM.
 *
 * @module
 */
import { GrpcContainerdClient } from "../../src/containerd/grpc_client.ts";
import { instantToMillis } from "../../src/time.ts";
import { TaskEvents } from "../../tests/harness/task_events.ts";

const [mode, socket, namespace, countText] = Deno.args;
const encoder = new TextEncoder();
const print = (line: unknown) => Deno.stdout.writeSync(encoder.encode(JSON.stringify(line) + "\n"));
const wallMs = () => performance.timeOrigin + performance.now();
const stopped = new Promise<void>((resolve) => Deno.addSignalListener("SIGTERM", resolve));

if (mode === "events") {
  const events = await TaskEvents.start(socket, namespace, {
    onArrival: (a) =>
      print({
        kind: a.kind,
        id: a.id,
        at: a.at,
        exitedAt: a.exitedAt && instantToMillis(a.exitedAt),
      }),
  });
  print({ ready: true });
  await stopped;
  await events.close();
} else if (mode === "poll") {
  const count = Number(countText);
  const abort = new AbortController();
  let listed = 0;
  const pollers = Array.from({ length: count }, async (_, poller) => {
    const client = new GrpcContainerdClient({ address: socket });
    const seen = new Set<string>();
    let first = true;
    await new Promise((r) => setTimeout(r, poller * 1_000 / count));
    while (!abort.signal.aborted) {
      try {
        const tasks = await client.listTasks(namespace, { signal: abort.signal });
        const at = wallMs();
        for (const t of tasks) {
          if (t.status === "stopped" && t.exitedAt && !seen.has(t.containerId)) {
            seen.add(t.containerId);
            print({
              kind: "seen",
              poller,
              id: t.containerId,
              at,
              exitedAt: instantToMillis(t.exitedAt),
            });
          }
        }
      } catch {
        // containerd busy or the run ending: the next listing tells.
      }
      if (first && ++listed === count) print({ ready: true });
      first = false;
      await new Promise((r) => setTimeout(r, 1_000));
    }
    client.close();
  });
  await stopped;
  abort.abort();
  await Promise.all(pollers);
} else {
  console.error("usage: observer.ts events SOCKET NAMESPACE | poll SOCKET NAMESPACE N");
  Deno.exit(2);
}
Deno.exit(0);
