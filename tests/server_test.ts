/**
 * The API server in-process: ApiServer on a unix socket in a temporary directory, backed
 * by a real Controller over the scripted fake containerd and an in-memory KV store, called
 * through AgentClient and through a raw grpc-js client.
 */
import * as grpc from "@grpc/grpc-js";
import { join } from "node:path";
import { AgentClient } from "../src/cli/client.ts";
import { Controller } from "../src/controller/controller.ts";
import {
  CancelledError,
  DeadlineExceededError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  UnimplementedError,
} from "../src/errors.ts";
import {
  ControllerCreateRequest,
  ControllerService,
} from "../src/gen/containerd/services/sandbox/v1/sandbox.ts";
import { SandboxesService, SandboxState } from "../src/gen/podsandboxd/v1/podsandboxd.ts";
import { grpcTarget, unaryCall } from "../src/grpc/call.ts";
import { ApiServer } from "../src/server/server.ts";
import { KvSandboxStore } from "../src/store/kv_store.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { FakeContainerd } from "./harness/fake_containerd.ts";
import { eventually } from "./harness/process.ts";
import { stubService } from "./harness/stub_service.ts";

const NS = "k8s.io";
const FILTERS = ['labels."io.cri-containerd.kind"==sandbox'];

/** A temporary directory, removed on dispose. */
async function tempDir(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: "psd-server-" });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true });
    },
  };
}

interface Setup {
  dir: string;
  socket: string;
  fake: FakeContainerd;
  controller: Controller;
  server: ApiServer;
  client: AgentClient;
  /** A raw grpc-js client on the agent's socket (closed with the setup). */
  raw: grpc.Client;
  /** Lets already-emitted events be dispatched and applied. */
  settle(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function setup(): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "psd-server-" });
  const socket = join(dir, "agent.sock");
  const fake = new FakeContainerd(NS);
  const store = await KvSandboxStore.open(":memory:");
  const controller = new Controller(fake, store, {
    namespace: NS,
    filters: FILTERS,
    reap: "never",
    resyncIntervalMs: 0,
    retryBackoff: { initialMs: 5, maxMs: 20 },
    reconnectBackoff: { initialMs: 5, maxMs: 20 },
  });
  const stop = new AbortController();
  const running = controller.run(stop.signal);
  assertEquals((await controller.firstOutcome()).state, "connected");
  const server = await ApiServer.start({ socketPath: socket, service: controller });
  const client = new AgentClient(socket);
  const raw = new grpc.Client(grpcTarget(socket), grpc.credentials.createInsecure());
  return {
    dir,
    socket,
    fake,
    controller,
    server,
    client,
    raw,
    async settle() {
      await new Promise((r) => setTimeout(r, 0));
      await controller.settled();
    },
    async [Symbol.asyncDispose]() {
      client.close();
      raw.close();
      controller.close();
      stop.abort();
      await running;
      await server.close(500);
      fake.close();
      store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Adds a running sandbox to the fake and waits until the agent has it as READY. */
async function runningSandbox(t: Setup, id: string): Promise<void> {
  t.fake.addContainer(id);
  t.fake.startTask(id);
  await t.settle();
  assertEquals((await t.client.get(id)).state, SandboxState.SANDBOX_READY);
}

Deno.test("many concurrent Wait calls on one sandbox all wake with its exit", async () => {
  await using t = await setup();
  await runningSandbox(t, "sb");
  const second = new AgentClient(t.socket);
  try {
    const waits = Array.from(
      { length: 24 },
      (_, i) => (i % 2 ? second : t.client).wait("sb"),
    );
    await eventually("24 blocked waiters", () => t.controller.waiterCount === 24);
    const exitedAt = t.fake.exitTask("sb", 137);
    const results = await Promise.all(waits);
    for (const result of results) {
      assertEquals(result, { id: "sb", exitStatus: 137, exitedAt });
    }
    assertEquals(t.controller.waiterCount, 0);
  } finally {
    second.close();
  }
});

Deno.test("Wait on a sandbox that already exited answers at once, status 0 included", async () => {
  await using t = await setup();
  await runningSandbox(t, "zero");
  const exitedAt = t.fake.exitTask("zero", 0);
  await t.settle();
  assertEquals(await t.client.wait("zero"), { id: "zero", exitStatus: 0, exitedAt });
  const record = await t.client.get("zero");
  assertEquals(record.exitStatus, 0, "an exit status of 0 is on the wire, not absent");
  assertEquals(record.exitStatusKnown, true);
  assertEquals(record.state, SandboxState.SANDBOX_NOTREADY);
});

Deno.test("a Wait whose client deadline passes fails DEADLINE_EXCEEDED and frees its waiter", async () => {
  await using t = await setup();
  await runningSandbox(t, "sb");
  const waiting = t.client.wait("sb", { timeoutMs: 1_500 });
  await eventually("the waiter to register", () => t.controller.waiterCount === 1);
  const err = await assertRejects(() => waiting, DeadlineExceededError);
  assertMatch(err.message, /wait for sandbox sb/);
  await eventually("the waiter to be freed", () => t.controller.waiterCount === 0);
  // The sandbox is still followed: a later wait gets its exit.
  const again = t.client.wait("sb");
  await eventually("the new waiter", () => t.controller.waiterCount === 1);
  t.fake.exitTask("sb", 3);
  assertEquals((await again).exitStatus, 3);
});

Deno.test("a Wait cancelled by the client frees its waiter; other waiters stay", async () => {
  await using t = await setup();
  await runningSandbox(t, "sb");
  const abort = new AbortController();
  const cancelled = t.client.wait("sb", { signal: abort.signal });
  const kept = t.client.wait("sb");
  await eventually("two waiters", () => t.controller.waiterCount === 2);
  abort.abort();
  await assertRejects(() => cancelled, CancelledError);
  await eventually("the cancelled waiter to be freed", () => t.controller.waiterCount === 1);
  t.fake.exitTask("sb", 9);
  assertEquals((await kept).exitStatus, 9);
  assertEquals(t.controller.waiterCount, 0);
});

Deno.test("an unknown sandbox id is NOT_FOUND for Wait, Get and Status", async () => {
  await using t = await setup();
  const wait = await assertRejects(() => t.client.wait("nope"), NotFoundError);
  assertMatch(wait.message, /"nope" not found in namespace k8s\.io/);
  await assertRejects(() => t.client.get("nope"), NotFoundError);
  await assertRejects(
    () =>
      unaryCall(t.raw, ControllerService.status, {
        sandboxId: "nope",
        verbose: false,
        sandboxer: "",
      }, { what: "status", timeoutMs: 10_000 }),
    NotFoundError,
  );
  assertEquals(t.controller.waiterCount, 0);
});

Deno.test("malformed ids and namespaces are INVALID_ARGUMENT naming the rule", async () => {
  await using t = await setup();
  const call = <Req, Res>(
    method: Parameters<typeof unaryCall<Req, Res>>[1],
    request: Req,
    metadata?: Record<string, string>,
  ) =>
  () => unaryCall(t.raw, method, request, { what: "call", timeoutMs: 10_000, metadata });

  for (const id of ["../etc", "a b", "-x", "x".repeat(77)]) {
    const err = await assertRejects(
      call(ControllerService.wait, { sandboxId: id, sandboxer: "" }),
      InvalidArgumentError,
    );
    assertMatch(err.message, /sandbox id .*(not a valid identifier|characters long)/);
  }
  const empty = await assertRejects(
    call(ControllerService.wait, { sandboxId: "", sandboxer: "" }),
    InvalidArgumentError,
  );
  assertMatch(empty.message, /sandbox id is required/);
  const get = await assertRejects(
    call(SandboxesService.get, { id: "a//b", namespace: "" }),
    InvalidArgumentError,
  );
  assertMatch(get.message, /sandbox id "a\/\/b" is not a valid identifier/);
  const ns = await assertRejects(
    call(SandboxesService.get, { id: "sb", namespace: "bad/ns" }),
    InvalidArgumentError,
  );
  assertMatch(ns.message, /namespace "bad\/ns" is not a valid identifier/);
  const fromMetadata = await assertRejects(
    call(ControllerService.wait, { sandboxId: "sb", sandboxer: "" }, {
      "containerd-namespace": "bad ns",
    }),
    InvalidArgumentError,
  );
  assertMatch(fromMetadata.message, /namespace "bad ns"/);
  assertEquals(t.controller.waiterCount, 0, "nothing was waited for");
});

Deno.test("List filters by state and refuses an out-of-range state enum", async () => {
  await using t = await setup();
  await runningSandbox(t, "up");
  await runningSandbox(t, "down");
  t.fake.exitTask("down", 1);
  await t.settle();
  const ids = (list: { id: string }[]) => list.map((s) => s.id).sort();
  assertEquals(ids(await t.client.list()), ["down", "up"]);
  assertEquals(ids(await t.client.list(SandboxState.SANDBOX_READY)), ["up"]);
  assertEquals(ids(await t.client.list(SandboxState.SANDBOX_NOTREADY)), ["down"]);
  const err = await assertRejects(
    () =>
      unaryCall(t.raw, SandboxesService.list, { state: 7 as SandboxState, namespace: "" }, {
        what: "list",
        timeoutMs: 10_000,
      }),
    InvalidArgumentError,
  );
  assertMatch(err.message, /state 7 is not a SandboxState/);
});

Deno.test("without --sandboxer, lifecycle RPCs are UNIMPLEMENTED, naming the RPC and the flag", async () => {
  await using t = await setup();
  const cases: Array<[string, () => Promise<unknown>]> = [
    ["Stop", () =>
      unaryCall(t.raw, ControllerService.stop, {
        sandboxId: "sb",
        timeoutSecs: 0,
        sandboxer: "",
      }, { what: "stop", timeoutMs: 10_000 })],
    ["Create", () =>
      unaryCall(
        t.raw,
        ControllerService.create,
        ControllerCreateRequest.fromPartial({ sandboxId: "sb", sandboxer: "" }),
        {
          what: "create",
          timeoutMs: 10_000,
        },
      )],
    [
      "Shutdown",
      () =>
        unaryCall(t.raw, ControllerService.shutdown, { sandboxId: "sb", sandboxer: "" }, {
          what: "shutdown",
          timeoutMs: 10_000,
        }),
    ],
  ];
  for (const [rpc, fn] of cases) {
    const err = await assertRejects(fn, UnimplementedError);
    assertMatch(
      err.message,
      new RegExp(`containerd\\.services\\.sandbox\\.v1\\.Controller/${rpc} `),
    );
    assertMatch(err.message, /only observes sandboxes \(serve --sandboxer NAME/);
  }
});

Deno.test("the socket file has mode 0660 after start and is removed on close", async () => {
  await using dir = await tempDir();
  const socket = join(dir.path, "run", "agent.sock");
  const server = await ApiServer.start({ socketPath: socket, service: stubService(NS) });
  try {
    const info = await Deno.lstat(socket);
    assert(info.isSocket);
    assertEquals((info.mode ?? 0) & 0o777, 0o660);
  } finally {
    await server.close(100);
  }
  assertEquals(await exists(socket), false);
});

Deno.test("a stale socket file (nobody listening) at the path is replaced", async () => {
  await using t = await setup();
  const socket = join(t.dir, "stale.sock");
  await makeStaleSocket(socket);
  assert((await Deno.lstat(socket)).isSocket, "precondition: a socket file is there");
  const server = await ApiServer.start({ socketPath: socket, service: t.controller });
  const client = new AgentClient(socket);
  try {
    await runningSandbox(t, "sb");
    assertEquals((await client.get("sb")).id, "sb", "the new server answers on the path");
  } finally {
    client.close();
    await server.close(100);
  }
});

Deno.test("a socket another process answers on is refused and left alone", async () => {
  await using t = await setup();
  const err = await assertRejects(
    () => ApiServer.start({ socketPath: t.socket, service: t.controller }),
    Error,
  );
  assertMatch(err.message, /another process is already serving on .*agent\.sock/);
  assertEquals((await t.client.list()).length, 0, "the running server still answers");
});

Deno.test("a regular file at the socket path is refused and left in place", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "agent.sock");
  await Deno.writeTextFile(path, "precious\n");
  const err = await assertRejects(
    () => ApiServer.start({ socketPath: path, service: stubService(NS) }),
    Error,
  );
  assert(err.message.includes(path), err.message);
  assertMatch(err.message, /exists and is not a socket; refusing to replace it/);
  assertEquals(await Deno.readTextFile(path), "precious\n");
});

Deno.test("controller.close() fails in-flight Wait calls with UNAVAILABLE 'shutting down'", async () => {
  await using t = await setup();
  await runningSandbox(t, "a");
  await runningSandbox(t, "b");
  const waits = [t.client.wait("a"), t.client.wait("a"), t.client.wait("b")];
  await eventually("three waiters", () => t.controller.waiterCount === 3);
  t.controller.close();
  for (const waiting of waits) {
    const err = await assertRejects(() => waiting, UnavailableError);
    assertMatch(err.message, /shutting down/);
  }
  assertEquals(t.controller.waiterCount, 0);
  // A wait that arrives after close fails the same way instead of blocking.
  const late = await assertRejects(() => t.client.wait("a"), UnavailableError);
  assertMatch(late.message, /shutting down/);
});

// ---- helpers ------------------------------------------------------------------------

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Leaves a socket file nobody listens on, as a crashed agent does: a second name for a
 * listening socket survives the listener, which unlinks only its own path on close.
 */
async function makeStaleSocket(path: string): Promise<void> {
  const live = `${path}.live`;
  const listener = Deno.listen({ transport: "unix", path: live });
  try {
    await Deno.link(live, path);
  } finally {
    listener.close();
  }
  await Deno.remove(live).catch(() => {});
}
