/**
 * Finding a task's shim in a containerd state directory laid out as containerd 1.6/1.7
 * (`address`) and 2.x (`bootstrap.json`) write it, and refusing what cannot be used.
 */
import { join } from "node:path";
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnimplementedError,
} from "../../src/errors.ts";
import { StateDirShimLocator } from "../../src/shim/locator.ts";
import { assertEquals, assertMatch, assertRejects } from "../harness/assert.ts";

const NS = "k8s.io";
const SOCK = "/run/containerd/s/0123456789abcdef";

async function withState(
  files: Record<string, string>,
  body: (locator: StateDirShimLocator, state: string) => Promise<void>,
): Promise<void> {
  const state = await Deno.makeTempDir({ prefix: "psd-shimloc-" });
  try {
    for (const [rel, text] of Object.entries(files)) {
      const path = join(state, "io.containerd.runtime.v2.task", rel);
      await Deno.mkdir(join(path, ".."), { recursive: true });
      await Deno.writeTextFile(path, text);
    }
    await body(new StateDirShimLocator(state), state);
  } finally {
    await Deno.remove(state, { recursive: true });
  }
}

const bundle = (state: string, id: string) => join(state, "io.containerd.runtime.v2.task", NS, id);

Deno.test("containerd 1.6/1.7: the address file names a task API v2 shim", async () => {
  await withState({ [`${NS}/sb1/address`]: `unix://${SOCK}` }, async (locator, state) => {
    assertEquals(await locator.locate(NS, "sb1"), {
      namespace: NS,
      id: "sb1",
      socket: SOCK,
      api: 2,
      service: "containerd.task.v2.Task",
      source: join(bundle(state, "sb1"), "address"),
    });
  });
});

Deno.test("containerd 2.x: bootstrap.json version 3 is task API v3, version 2 is v2", async () => {
  await withState({
    [`${NS}/v3/bootstrap.json`]: JSON.stringify({
      version: 3,
      address: `unix://${SOCK}`,
      protocol: "ttrpc",
    }),
    [`${NS}/v2/bootstrap.json`]: JSON.stringify({
      version: 2,
      address: `unix://${SOCK}`,
      protocol: "ttrpc",
    }),
  }, async (locator, state) => {
    const v3 = await locator.locate(NS, "v3");
    assertEquals([v3.api, v3.service, v3.socket], [3, "containerd.task.v3.Task", SOCK]);
    assertEquals(v3.source, join(bundle(state, "v3"), "bootstrap.json"));
    const v2 = await locator.locate(NS, "v2");
    assertEquals([v2.api, v2.service], [2, "containerd.task.v2.Task"]);
  });
});

Deno.test("bootstrap.json wins over an address file, as in containerd", async () => {
  await withState({
    [`${NS}/both/bootstrap.json`]: JSON.stringify({
      version: 3,
      address: "unix:///run/containerd/s/new",
      protocol: "ttrpc",
    }),
    [`${NS}/both/address`]: "unix:///run/containerd/s/old",
  }, async (locator) => {
    const e = await locator.locate(NS, "both");
    assertEquals([e.api, e.socket], [3, "/run/containerd/s/new"]);
  });
});

Deno.test("a bootstrap.json that is no JSON (or version < 2) is read as an address, as containerd does", async () => {
  await withState({
    [`${NS}/raw/bootstrap.json`]: `unix://${SOCK}\n`,
    [`${NS}/old/bootstrap.json`]: JSON.stringify({ version: 1, address: "x", protocol: "ttrpc" }),
  }, async (locator) => {
    const raw = await locator.locate(NS, "raw");
    assertEquals([raw.api, raw.socket], [2, SOCK]);
    // containerd would take the whole JSON text as the address: unusable, and said so.
    const old = await assertRejects(() => locator.locate(NS, "old"), UnimplementedError);
    assertMatch(old.message, /connects only to unix:\/\/\/absolute\/path sockets/);
  });
});

Deno.test("shims podsandboxd cannot speak to are UnimplementedError naming the file", async () => {
  await withState({
    [`${NS}/grpc/bootstrap.json`]: JSON.stringify({
      version: 3,
      address: "unix:///run/x",
      protocol: "grpc",
    }),
    [`${NS}/v4/bootstrap.json`]: JSON.stringify({
      version: 4,
      address: "unix:///run/x",
      protocol: "ttrpc",
    }),
    [`${NS}/vsock/bootstrap.json`]: JSON.stringify({
      version: 3,
      address: "vsock://3:1024",
      protocol: "ttrpc",
    }),
    [`${NS}/abstract/address`]: "unix://@containerd-shim/abc",
  }, async (locator, state) => {
    const grpc = await assertRejects(() => locator.locate(NS, "grpc"), UnimplementedError);
    assertEquals(
      grpc.message,
      `shim of task ${NS}/grpc speaks "grpc" (${
        join(bundle(state, "grpc"), "bootstrap.json")
      }); podsandboxd speaks only ttrpc`,
    );
    assertMatch(
      (await assertRejects(() => locator.locate(NS, "v4"), UnimplementedError)).message,
      /task API version 4/,
    );
    assertMatch(
      (await assertRejects(() => locator.locate(NS, "vsock"), UnimplementedError)).message,
      /"vsock:\/\/3:1024"/,
    );
    await assertRejects(() => locator.locate(NS, "abstract"), UnimplementedError);
  });
});

Deno.test("no shim files is NotFoundError naming both paths and the state directory", async () => {
  await withState({ [`${NS}/empty/config.json`]: "{}" }, async (locator, state) => {
    for (const id of ["empty", "absent"]) {
      const err = await assertRejects(() => locator.locate(NS, id), NotFoundError);
      const b = bundle(state, id);
      assertEquals(
        err.message,
        `no shim for task ${NS}/${id}: neither ${b}/bootstrap.json nor ${b}/address exists ` +
          `(no such task, or it was deleted; is ${state} containerd's state directory?)`,
      );
    }
  });
});

Deno.test("malformed ids and namespaces are refused before any path is built", async () => {
  await withState({}, async (locator) => {
    for (const [ns, id] of [[NS, "../../etc"], [NS, "a/b"], ["", "x"], ["k8s.io/..", "x"]]) {
      await assertRejects(() => locator.locate(ns, id), InvalidArgumentError);
    }
    await assertRejects(() => locator.list("../x"), InvalidArgumentError);
  });
});

Deno.test("unusable files are FailedPreconditionError: too big, wrong JSON shape", async () => {
  await withState({
    [`${NS}/big/address`]: "unix:///" + "a".repeat(70_000),
    [`${NS}/shape/bootstrap.json`]: JSON.stringify({ version: 3, address: 7, protocol: "ttrpc" }),
  }, async (locator) => {
    assertMatch(
      (await assertRejects(() => locator.locate(NS, "big"), FailedPreconditionError)).message,
      /address is larger than 65536 bytes/,
    );
    assertMatch(
      (await assertRejects(() => locator.locate(NS, "shape"), FailedPreconditionError)).message,
      /expected string "address" and "protocol"/,
    );
  });
});

Deno.test("list() names the tasks with bundles in a namespace, sorted; none is []", async () => {
  await withState({
    [`${NS}/b/address`]: `unix://${SOCK}`,
    [`${NS}/a/bootstrap.json`]: "{}",
    [`${NS}/not-a-dir`]: "",
  }, async (locator) => {
    assertEquals(await locator.list(NS), ["a", "b"]);
    assertEquals(await locator.list("other"), []);
  });
});
