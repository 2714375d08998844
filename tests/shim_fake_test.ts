/**
 * The shim adapter end to end against a fake shim (a test ttrpc server serving the task
 * API's Wait and State) found through a state directory laid out as containerd 2.x
 * (bootstrap.json, task API v3) and 1.6/1.7 (address, v2) lay it out. The real shims
 * of containerd 1.6 are in tests/shim_test.ts.
 */
import { join } from "node:path";
import { CancelledError, GrpcCode, NotFoundError, UnavailableError } from "../src/errors.ts";
import {
  StateRequest,
  StateResponse,
  WaitRequest,
  WaitResponse,
} from "../src/gen/containerd/runtime/task/shim.ts";
import { Status } from "../src/gen/containerd/types/task.ts";
import { StateDirShimLocator, TASK_BUNDLES_DIR } from "../src/shim/locator.ts";
import { dialShim, TtrpcShimClient } from "../src/shim/task_client.ts";
import type { ShimClient } from "../src/shim/types.ts";
import { parseInstant } from "../src/time.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { eventually } from "./harness/process.ts";
import { type Handler, TestTtrpcServer } from "./harness/ttrpc_server.ts";

const NS = "k8s.io";
const EXITED_AT = "2026-12-01T10:11:12.123456789Z";

/** A shim serving one task API version; `exit` ends a task and answers its waiters. */
class FakeShim {
  readonly server: TestTtrpcServer;
  readonly #exits = new Map<string, PromiseWithResolvers<{ status: number; at: string }>>();

  constructor(path: string, service: string, readonly pids: Record<string, number>) {
    const known = (id: string) => id in this.pids;
    const notFound = (id: string) => ({
      status: { code: GrpcCode.NOT_FOUND, message: `container ${id}: not found` },
    });
    const handlers: Record<string, Handler> = {
      [`${service}/Wait`]: async (req) => {
        const { id } = WaitRequest.decode(req.payload);
        if (!known(id)) return notFound(id);
        const exit = await this.#exit(id).promise;
        return {
          payload: WaitResponse.encode({
            exitStatus: exit.status,
            exitedAt: parseInstant(exit.at),
          }).finish(),
        };
      },
      [`${service}/State`]: (req) => {
        const { id } = StateRequest.decode(req.payload);
        if (!known(id)) return notFound(id);
        return {
          payload: StateResponse.encode({
            id,
            pid: this.pids[id],
            status: Status.RUNNING,
            exitStatus: 0,
            exitedAt: undefined,
          }).finish(),
        };
      },
    };
    this.server = TestTtrpcServer.start(path, handlers);
  }

  #exit(id: string) {
    let e = this.#exits.get(id);
    if (!e) this.#exits.set(id, e = Promise.withResolvers());
    return e;
  }

  exit(id: string, status: number, at: string): void {
    this.#exit(id).resolve({ status, at });
  }
}

interface Setup {
  state: string;
  shim: FakeShim;
  client: ShimClient;
}

async function withFakeShim(
  layout: "bootstrap-v3" | "address-v2",
  body: (s: Setup) => Promise<void>,
): Promise<void> {
  const state = await Deno.makeTempDir({ prefix: "psd-fakeshim-" });
  const socket = join(state, "shim.sock");
  const service = layout === "bootstrap-v3" ? "containerd.task.v3.Task" : "containerd.task.v2.Task";
  const shim = new FakeShim(socket, service, { sb1: 4242, sb2: 4343 });
  const bundle = join(state, TASK_BUNDLES_DIR, NS, "sb1");
  await Deno.mkdir(bundle, { recursive: true });
  if (layout === "bootstrap-v3") {
    await Deno.writeTextFile(
      join(bundle, "bootstrap.json"),
      JSON.stringify({ version: 3, address: `unix://${socket}`, protocol: "ttrpc" }),
    );
  } else await Deno.writeTextFile(join(bundle, "address"), `unix://${socket}`);
  const endpoint = await new StateDirShimLocator(state).locate(NS, "sb1");
  const client = await dialShim(endpoint);
  try {
    await body({ state, shim, client });
  } finally {
    await client[Symbol.asyncDispose]();
    await shim.server.close();
    await Deno.remove(state, { recursive: true });
  }
}

for (const layout of ["bootstrap-v3", "address-v2"] as const) {
  const service = layout === "bootstrap-v3" ? "containerd.task.v3.Task" : "containerd.task.v2.Task";

  Deno.test(`${layout}: state answers the pid and a pending wait the exit, on ${service}`, async () => {
    await withFakeShim(layout, async ({ shim, client }) => {
      assertEquals(client.endpoint.service, service);
      assertEquals(await client.state("sb1"), {
        id: "sb1",
        pid: 4242,
        status: "running",
        exitStatus: 0,
        exitedAt: undefined,
      });
      const waiting = client.wait("sb1");
      await eventually(
        "the Wait to reach the shim",
        () => shim.server.requests.some((r) => r.method === "Wait"),
      );
      shim.exit("sb1", 137, EXITED_AT);
      assertEquals(await waiting, { exitStatus: 137, exitedAt: EXITED_AT });
      // Exit 0 is an exit like any other.
      const zero = client.wait("sb2");
      shim.exit("sb2", 0, EXITED_AT);
      assertEquals(await zero, { exitStatus: 0, exitedAt: EXITED_AT });
      assertEquals(
        new Set(shim.server.requests.map((r) => `${r.service}/${r.method}`)),
        new Set([`${service}/State`, `${service}/Wait`]),
      );
    });
  });
}

Deno.test("the shim client can only read: its methods are wait, state and close, and it sends only Wait and State", async () => {
  const methods = Object.getOwnPropertyNames(TtrpcShimClient.prototype).sort();
  assertEquals(methods, ["close", "constructor", "state", "wait"]);
  await withFakeShim("bootstrap-v3", async ({ shim, client }) => {
    await client.state("sb1");
    const w = client.wait("sb1", { timeoutMs: 50 }).catch(() => {});
    await w;
    const sent = new Set(shim.server.requests.map((r) => r.method));
    assertEquals(sent, new Set(["State", "Wait"]));
  });
});

Deno.test("a task the shim does not know is NotFoundError naming the shim call", async () => {
  await withFakeShim("bootstrap-v3", async ({ client }) => {
    const err = await assertRejects(() => client.state("nope"), NotFoundError);
    assertEquals(
      err.message,
      `shim containerd.task.v3.Task/State ${NS}/nope on ${client.endpoint.socket}: container nope: not found`,
    );
  });
});

Deno.test("aborting one wait leaves the others and the connection working", async () => {
  await withFakeShim("bootstrap-v3", async ({ shim, client }) => {
    const abort = new AbortController();
    const gaveUp = client.wait("sb1", { signal: abort.signal });
    const stays = client.wait("sb1");
    abort.abort();
    await assertRejects(() => gaveUp, CancelledError);
    assertEquals((await client.state("sb1")).pid, 4242);
    shim.exit("sb1", 3, EXITED_AT);
    assertEquals((await stays).exitStatus, 3);
  });
});

Deno.test("the shim going away rejects pending waits with UnavailableError and resolves closed", async () => {
  await withFakeShim("bootstrap-v3", async ({ shim, client }) => {
    const waits = [client.wait("sb1"), client.wait("sb2")];
    // Both reject at once: handled now, checked one after the other below.
    for (const w of waits) w.catch(() => {});
    await eventually("both Waits at the shim", () => shim.server.requests.length === 2);
    await shim.server.close();
    for (const w of waits) {
      assertMatch(
        (await assertRejects(() => w, UnavailableError)).message,
        /^shim containerd\.task\.v3\.Task\/Wait k8s\.io\/sb\d on .*: connection closed by the peer$/,
      );
    }
    assert((await client.closed) instanceof UnavailableError);
    // Its socket is gone too: dialing again says so.
    await assertRejects(() => dialShim(client.endpoint), UnavailableError);
  });
});
