/**
 * The latency benchmark's observers, each in a process of its own so that neither the
 * benchmark's waiters nor each other delay what they see:
 *
 * - `events SOCKET NAMESPACE`: the floor, a raw subscriber of containerd's TaskExit and
 *   TaskDelete events (grpc-js and the agent's decoder, no store);
 * - `poll SOCKET NAMESPACE N`: N pollers that list tasks and sleep 1 s between listings
 *   (the kubelet's generic PLEG relist), their first listings 1/N s apart;
 * - `wait AGENT_SOCKET NAMESPACE PER_CONNECTION ID...`: one blocked Wait per id on the
 *   agent's socket, PER_CONNECTION to a connection. It is ended with SIGKILL: a Deno
 *   grpc-js client that closes its connections gracefully can abort the agent (Deno
 *   2.9.6's node:http2, see src/server/connection_cap.ts); one that dies never did.
 *
 * Prints `{"ready":true}` once live (the subscription's marker came back; every poller
 * listed once; every Wait sent), then one JSON line per first sighting or answer,
 * wall-clock ms: `{"kind":"exit"|"delete"|"seen"|"answer","id","at","exitedAt","poller"?,
 * "status"?}`, or `{"kind":"error","id","error"}` for a Wait that failed. Runs until
 * SIGTERM (SIGKILL for `wait`).
 *
 * @module
 */
import { AgentClient } from "../../src/cli/client.ts";
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
} else if (mode === "wait") {
  const [perConnection, ...ids] = Deno.args.slice(3);
  const clients: AgentClient[] = [];
  for (const [i, id] of ids.entries()) {
    if (i % Number(perConnection) === 0) {
      clients.push(new AgentClient(socket, { namespace, ownConnection: true }));
    }
    clients.at(-1)!.wait(id, { timeoutMs: 600_000 }).then(
      (res) =>
        print({
          kind: "answer",
          id,
          at: wallMs(),
          status: res.exitStatus,
          exitedAt: res.exitedAt && instantToMillis(res.exitedAt),
        }),
      (err) => print({ kind: "error", id, error: String((err as Error).message ?? err) }),
    );
  }
  print({ ready: true });
  await new Promise(() => {}); // until killed
} else {
  console.error(
    "usage: observer.ts events SOCKET NAMESPACE | poll SOCKET NAMESPACE N | " +
      "wait AGENT_SOCKET NAMESPACE PER_CONNECTION ID...",
  );
  Deno.exit(2);
}
Deno.exit(0);
