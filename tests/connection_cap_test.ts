/**
 * The server's per-connection stream cap (src/server/connection_cap.ts): clients are asked
 * to move to a new connection after STREAMS_PER_CONNECTION calls — except grpc-go's
 * (containerd's sandbox proxy), which the GOAWAY made lose calls and which closes without
 * the GOAWAY that reaches Deno's abort. Raw HTTP/2 clients, so the user-agent is ours to set.
 */
import http2 from "node:http2";
import net from "node:net";
import { join } from "node:path";
import { capsClient, STREAMS_PER_CONNECTION } from "../src/server/connection_cap.ts";
import { ApiServer } from "../src/server/server.ts";
import { assert, assertEquals } from "./harness/assert.ts";
import { stubService } from "./harness/stub_service.ts";

/** Platform calls, one after another, on one connection; how many until a GOAWAY came. */
async function callsUntilGoaway(socket: string, userAgent: string, calls: number) {
  const session = http2.connect("http://localhost", {
    createConnection: () => net.connect({ path: socket }),
  });
  let goawayAfter: number | undefined;
  let done = 0;
  session.on("goaway", () => (goawayAfter ??= done));
  try {
    for (; done < calls && goawayAfter === undefined; done++) {
      await new Promise<void>((resolve, reject) => {
        const req = session.request({
          ":method": "POST",
          ":path": "/containerd.services.sandbox.v1.Controller/Platform",
          "content-type": "application/grpc",
          te: "trailers",
          "user-agent": userAgent,
        });
        req.on("response", () => {});
        req.on("data", () => {});
        req.on("end", resolve);
        req.on("error", reject);
        // An empty message: no compression flag, length 0.
        req.end(new Uint8Array(5));
      });
    }
    // A GOAWAY sent with the last answer may arrive just after it.
    await new Promise((r) => setTimeout(r, 100));
    return { goawayAfter, done };
  } finally {
    session.destroy();
  }
}

Deno.test("the stream cap asks a grpc-js client to move on, and leaves containerd's grpc-go alone", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-cap-" });
  const socket = join(dir, "a.sock");
  const server = await ApiServer.start({ socketPath: socket, service: stubService() });
  try {
    const js = await callsUntilGoaway(socket, "grpc-node-js/1.14.7", 200);
    // The GOAWAY goes out as the cap's last stream starts.
    assertEquals(js.goawayAfter, STREAMS_PER_CONNECTION - 1, "grpc-js: asked to move on");
    const go = await callsUntilGoaway(socket, "grpc-go/1.72.2", 200);
    assertEquals(go.goawayAfter, undefined, "grpc-go: never asked");
    assertEquals(go.done, 200);
  } finally {
    await server.close(100);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("which clients the cap applies to, by their first request's user-agent", () => {
  assert(capsClient({ "user-agent": "grpc-node-js/1.14.7" }));
  assert(capsClient({}));
  assert(capsClient({ "user-agent": "curl/8.0 grpc-go/1.0" }));
  assert(!capsClient({ "user-agent": "grpc-go/1.72.2" }));
});
