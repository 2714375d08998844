/**
 * containerd's event stream cut in the middle of a message: a scripted server (raw
 * HTTP/2, since no real gRPC server can be made to send half a message) sends one whole
 * envelope, then part of the next, then drops the connection. The client must deliver
 * the whole event, then fail with a typed error — no crash, no hang, no half event.
 */
import http2 from "node:http2";
import { Buffer } from "node:buffer";
import { GrpcContainerdClient } from "../src/containerd/grpc_client.ts";
import type { ContainerdEvent } from "../src/containerd/types.ts";
import { StatusError } from "../src/errors.ts";
import { TaskExit } from "../src/gen/containerd/events/events.ts";
import { Envelope } from "../src/gen/containerd/services/events/v1/events.ts";
import { assert, assertEquals } from "./harness/assert.ts";

function frame(message: Uint8Array, declaredLength = message.length): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([header, Buffer.from(message)]);
}

function exitEnvelope(id: string, status: number): Uint8Array {
  const event = TaskExit.encode({
    containerId: id,
    id,
    pid: 42,
    exitStatus: status,
    exitedAt: { seconds: 1_800_000_000, nanos: 5 },
  }).finish();
  return Envelope.encode({
    timestamp: { seconds: 1_800_000_000, nanos: 6 },
    namespace: "k8s.io",
    topic: "/tasks/exit",
    event: { typeUrl: "containerd.events.TaskExit", value: Buffer.from(event) },
  }).finish();
}

Deno.test("an event stream cut mid-message yields the whole events, then a typed error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-cut-" });
  const socket = `${dir}/c.sock`;
  const server = http2.createServer();
  server.on("stream", (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => {
    if (headers[":path"] !== "/containerd.services.events.v1.Events/Subscribe") {
      stream.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "12" }, {
        endStream: true,
      });
      return;
    }
    stream.respond({ ":status": 200, "content-type": "application/grpc" });
    stream.write(frame(exitEnvelope("whole", 7)));
    const second = frame(exitEnvelope("half", 9));
    // The length prefix announces the whole message; only part of it follows.
    stream.write(second.subarray(0, 5 + 12), () => {
      setTimeout(() => stream.session?.destroy(), 50);
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  const client = new GrpcContainerdClient({ address: socket, callTimeoutMs: 2_000 });
  const seen: ContainerdEvent[] = [];
  let failure: unknown;
  const timeout = AbortSignal.timeout(10_000);
  try {
    for await (const event of client.subscribe(["namespace==k8s.io"], { signal: timeout })) {
      seen.push(event);
    }
  } catch (err) {
    failure = err;
  } finally {
    client.close();
    await new Promise((resolve) => server.close(resolve));
    await Deno.remove(dir, { recursive: true });
  }
  assert(!timeout.aborted, "the client noticed the cut instead of hanging");
  assertEquals(seen.map((e) => e.kind === "task-exit" && [e.containerId, e.exitStatus]), [[
    "whole",
    7,
  ]]);
  assert(failure instanceof StatusError, `a typed error, got ${failure}`);
  assert(/events\.Subscribe/.test((failure as Error).message), (failure as Error).message);
});
