/**
 * The agent's life around containerd's: started before containerd exists, stopped while
 * callers wait, and following exits by polling where events are not used.
 */
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import { AgentProcess } from "./harness/agent.ts";
import { PrivateContainerd } from "./harness/containerd.ts";
import { Containers, importImages, uniqueId } from "./harness/containers.ts";
import { eventually } from "./harness/process.ts";
import { SandboxState } from "../src/gen/podsandboxd/v1/podsandboxd.ts";
import type { AgentClient } from "../src/cli/client.ts";

const NS = "psd-life";

Deno.test("containerd absent at start: the agent serves, says it is not connected, connects when containerd appears", async () => {
  const containerd = await PrivateContainerd.prepare(); // not started yet
  const dir = await Deno.makeTempDir({ prefix: "psd-l-" });
  const c = new Containers(containerd, NS);
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start({ containerdSocket: containerd.socket, dir, namespace: NS });
    const list = await agent.cli("list", "--json");
    assertEquals(list.code, 0, list.stderr);
    assertEquals(JSON.parse(list.stdout), []);
    assertMatch(list.stderr, /warning: podsandboxd is not connected to containerd since \S+/);
    // One line per state change, not one per retry: give it time to retry many times.
    await new Promise((r) => setTimeout(r, 1_500));
    const unavailable = agent.logs.filter((l) => l.message?.startsWith("containerd unavailable"));
    assertEquals(unavailable.length, 1, agent.logText());

    await containerd.boot();
    await agent.waitForLog((l) => l.message?.startsWith("connected to containerd") ?? false);
    await importImages(containerd, NS);
    const id = uniqueId("late");
    await c.run(id, ["sh", "-c", "exit 4"]);
    const res = await agent.cli("wait", id, "--json", "--timeout", "30s");
    assertEquals(JSON.parse(res.stdout).exitStatus, 4, res.stderr);
    const status = await agent.cli("status", id);
    assertEquals(status.stderr, "", "no staleness warning once connected");
  } finally {
    await agent?.stop();
    c.close();
    await containerd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("SIGTERM: waiters get UNAVAILABLE 'shutting down', the agent exits 0 within 5 s, the store survives", async () => {
  const containerd = await PrivateContainerd.start();
  const dir = await Deno.makeTempDir({ prefix: "psd-l-" });
  const c = new Containers(containerd, NS);
  let agent: AgentProcess | undefined;
  try {
    await importImages(containerd, NS);
    const running = uniqueId("running");
    await c.run(running, ["sleep", "100000"]);
    const done = uniqueId("done");
    await c.run(done, ["sh", "-c", "exit 2"]);
    agent = await AgentProcess.start({ containerdSocket: containerd.socket, dir, namespace: NS });
    assertEquals(JSON.parse((await agent.cli("wait", done, "--json")).stdout).exitStatus, 2);
    const waiting = agent.cli("wait", running, "--timeout", "60s");
    await agent.waitForLog((l) => l.message === `waiting for sandbox ${NS}/${running}`, 20_000);
    const stopAt = Date.now();
    const status = await agent.stop("SIGTERM");
    const took = Date.now() - stopAt;
    assertEquals(status.code, 0);
    assert(took < 5_000, `stopped in ${took} ms`);
    const res = await waiting;
    assertEquals(res.code, 1);
    assertMatch(res.stderr, /shutting down/);
    assert(!/cannot reach/.test(res.stderr), "an agent that answers is not 'unreachable'");
    // Closed cleanly: a new agent reads the same store.
    agent = await AgentProcess.start({ containerdSocket: containerd.socket, dir, namespace: NS });
    assertEquals(JSON.parse((await agent.cli("status", done, "--json")).stdout).exitStatus, 2);
  } finally {
    await agent?.stop();
    c.close();
    await containerd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("SIGTERM with 1,000 Waits held over 20 connections: every waiter told 'shutting down', the agent exits 0", async () => {
  const containerd = await PrivateContainerd.start();
  const dir = await Deno.makeTempDir({ prefix: "psd-l-" });
  const c = new Containers(containerd, NS);
  let agent: AgentProcess | undefined;
  const clients: AgentClient[] = [];
  try {
    await importImages(containerd, NS);
    const running = uniqueId("held");
    await c.run(running, ["sleep", "100000"]);
    agent = await AgentProcess.start({ containerdSocket: containerd.socket, dir, namespace: NS });
    // Connections of 50 calls: under the cap of 64, as a client holding many Waits would.
    for (let i = 0; i < 20; i++) clients.push(agent.client({ ownConnection: true }));
    const waits = clients.flatMap((client) =>
      Array.from({ length: 50 }, () =>
        client.wait(running, { timeoutMs: 60_000 }).then(
          () => "answered",
          (err: Error) => err.message,
        ))
    );
    await eventually(
      "1,000 waiters in the agent",
      () =>
        agent!.logs.filter((l) => l.message === `waiting for sandbox ${NS}/${running}`).length >=
          1_000,
      { timeoutMs: 30_000 },
    );
    const status = await agent.stop("SIGTERM");
    // Deno's node:http2 aborts (exit 134, denoland/deno#36788) on some closes of busy
    // connections: the agent's own shutdown must not be one of them.
    assertEquals([status.code, status.signal], [0, null], agent.logText().slice(-2_000));
    const answers = await Promise.all(waits);
    const shuttingDown = answers.filter((a) => /shutting down/.test(a)).length;
    assertEquals(shuttingDown, 1_000, `answers: ${JSON.stringify([...new Set(answers)])}`);
  } finally {
    for (const client of clients) client.close();
    await agent?.stop();
    c.close();
    await containerd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("--events=poll: exits are learned by listing tasks, with their real statuses", async () => {
  const containerd = await PrivateContainerd.start();
  const dir = await Deno.makeTempDir({ prefix: "psd-l-" });
  const c = new Containers(containerd, NS);
  let agent: AgentProcess | undefined;
  try {
    await importImages(containerd, NS);
    agent = await AgentProcess.start({
      containerdSocket: containerd.socket,
      dir,
      namespace: NS,
      // The shim would answer first: this is about what the listings learn.
      args: ["--events", "poll", "--poll-interval", "100ms", "--shim-wait", "off"],
    });
    const id = uniqueId("polled");
    await c.run(id, ["sh", "-c", "trap 'exit 9' TERM; sleep 100000 & wait"]);
    await c.termHandlerInstalled(id);
    const client = agent.client();
    try {
      await eventually(
        "the poll to list the sandbox as READY",
        async () =>
          (await client.get(id).catch(() => undefined))?.state === SandboxState.SANDBOX_READY,
      );
    } finally {
      client.close();
    }
    await c.kill(id, "SIGTERM");
    const res = await agent.cli("wait", id, "--json", "--timeout", "30s");
    assertEquals(res.code, 0, `${res.stderr}\nagent log:\n${agent.logText().slice(-3_000)}`);
    assertEquals(JSON.parse(res.stdout).exitStatus, 9, res.stderr);
    const record = JSON.parse((await agent.cli("status", id, "--json")).stdout);
    assertEquals(record.exitSource, "task-status");
    assert(!agent.logs.some((l) => /subscription marker/.test(l.message ?? "")));
  } finally {
    await agent?.stop();
    c.close();
    await containerd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
