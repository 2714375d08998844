/**
 * The waiters baseline: a bare grpc-js server on a unix socket whose containerd sandbox
 * Controller.Wait holds every call, with no agent behind it — what the gRPC stack alone
 * costs per blocked call.
 *
 * Usage: held_calls.ts SOCKET
 * Prints "ready" once it serves. Reads commands on stdin: "count" (prints the number of
 * calls held), "answer" (answers them all, exit 137, then prints "answered").
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { ControllerService } from "../../src/gen/containerd/services/sandbox/v1/sandbox.ts";

const [socket] = Deno.args;
type Callback = (err: null, response: unknown) => void;
const held: Callback[] = [];
const server = new grpc.Server();
server.addService(
  ControllerService as unknown as grpc.ServiceDefinition,
  { wait: (_call: unknown, callback: Callback) => held.push(callback) },
);
await new Promise<void>((resolve, reject) =>
  server.bindAsync(
    `unix://${socket}`,
    grpc.ServerCredentials.createInsecure(),
    (err) => (err ? reject(err) : resolve()),
  )
);
console.log("ready");
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let buffer = "";
for await (const chunk of lines) {
  buffer += chunk;
  let nl;
  while ((nl = buffer.indexOf("\n")) >= 0) {
    const command = buffer.slice(0, nl).trim();
    buffer = buffer.slice(nl + 1);
    if (command === "count") console.log(String(held.length));
    else if (command === "answer") {
      const now = Date.now();
      const exitedAt = { seconds: Math.floor(now / 1000), nanos: (now % 1000) * 1e6 };
      for (const callback of held.splice(0)) callback(null, { exitStatus: 137, exitedAt });
      console.log("answered");
    }
  }
}
