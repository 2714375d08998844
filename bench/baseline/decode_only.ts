/**
 * The burst baseline: containerd's event stream subscribed and decoded exactly as the
 * agent does (same client, same filters, same decoder), with no store behind it.
 *
 * Usage: decode_only.ts SOCKET NAMESPACE COUNT
 * Prints "ready" once its subscription is live, then, after COUNT TaskExits, one JSON
 * line {"firstAt","lastAt","count"} (wall-clock ms) and exits.
 *
 * @module
 */
import { quoteFilterValue } from "../../src/containerd/filters.ts";
import { MARKER_TOPIC, markerPayload, WATCHED_TOPICS } from "../../src/containerd/events.ts";
import { GrpcContainerdClient } from "../../src/containerd/grpc_client.ts";

const [socket, namespace, countText] = Deno.args;
const count = Number(countText);
const client = new GrpcContainerdClient({ address: socket });
const abort = new AbortController();
const ns = `namespace==${quoteFilterValue(namespace)}`;
const events = client.subscribe(
  [...WATCHED_TOPICS, MARKER_TOPIC].map((t) => `${ns},topic==${quoteFilterValue(t)}`),
  { signal: abort.signal },
);
const nonce = crypto.randomUUID();
let ready = false;
const publishing = (async () => {
  while (!ready) {
    await client.publish(namespace, MARKER_TOPIC, markerPayload(nonce));
    await new Promise((r) => setTimeout(r, 50));
  }
})();
let seen = 0;
let firstAt = 0;
for await (const event of events) {
  if (event.kind === "marker" && event.nonce === nonce && !ready) {
    ready = true;
    console.log("ready");
  } else if (event.kind === "task-exit") {
    const now = performance.timeOrigin + performance.now();
    if (seen === 0) firstAt = now;
    if (++seen === count) {
      console.log(JSON.stringify({ firstAt, lastAt: now, count: seen }));
      break;
    }
  }
}
await publishing;
abort.abort();
client.close();
