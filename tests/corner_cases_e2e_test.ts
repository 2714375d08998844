/**
 * The corner cases of corner_cases_test.ts that a real containerd can be made to show:
 * an id reused by ctr-made sandboxes, a task started long after its container, and
 * sandboxes dying as the agent is told to stop.
 */
import { AgentClient } from "../src/cli/client.ts";
import { SandboxState } from "../src/gen/podsandboxd/v1/podsandboxd.ts";
import { assert, assertEquals } from "./harness/assert.ts";
import { AgentProcess } from "./harness/agent.ts";
import { PrivateContainerd } from "./harness/containerd.ts";
import { Containers, importImages, SANDBOX_LABEL, uniqueId } from "./harness/containers.ts";
import { BUSYBOX_IMAGE } from "./harness/image.ts";
import { eventually } from "./harness/process.ts";

const NS = "psd-corner";
const RUN_FOREVER = ["sleep", "100000"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A private containerd with the test images, and a clean-up for everything made. */
async function world() {
  const containerd = await PrivateContainerd.start();
  const dir = await Deno.makeTempDir({ prefix: "psd-cc-" });
  const c = new Containers(containerd, NS);
  const agents: AgentProcess[] = [];
  const clients: AgentClient[] = [];
  await importImages(containerd, NS);
  return {
    containerd,
    dir,
    c,
    async agent(args: string[] = []) {
      const a = await AgentProcess.start({
        containerdSocket: containerd.socket,
        dir,
        namespace: NS,
        args,
      });
      agents.push(a);
      const client = a.client();
      clients.push(client);
      return { agent: a, client };
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) client.close();
      for (const a of agents) await a.stop();
      c.close();
      await containerd.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

Deno.test("a ctr-made sandbox id reused after removal: the new sandbox answers for itself", async () => {
  await using w = await world();
  const { agent, client } = await w.agent(["--retention", "1s"]);
  const id = uniqueId("web");
  await w.c.run(id, ["sh", "-c", "exit 7"]);
  assertEquals((await client.wait(id, { timeoutMs: 20_000 })).exitStatus, 7);
  await w.c.remove(id);
  await eventually("the removal to be noted", async () => (await client.get(id)).deletedAt);

  await w.c.run(id, RUN_FOREVER);
  const pid = (await w.c.task(id)).pid;
  await eventually("the new sandbox to be READY", async () => {
    const r = await client.get(id);
    return r.state === SandboxState.SANDBOX_READY && r.pid === pid;
  });
  const fresh = await client.get(id);
  assertEquals(fresh.exitStatus, undefined, "not the old container's 7");
  assertEquals(fresh.deletedAt, undefined, "not the old container's removal");
  const waiting = client.wait(id, { timeoutMs: 30_000 });
  // Past the retention of the old record, more than once: the running one stays.
  await sleep(2_500);
  assertEquals((await client.get(id)).state, SandboxState.SANDBOX_READY, "still READY");
  assert(
    agent.logs.some((l) =>
      /is a new container with the id of one created at/.test(l.message ?? "")
    ),
    "the replacement is logged",
  );
  await w.c.kill(id, "SIGKILL");
  const exited = await waiting;
  assertEquals(exited.exitStatus, 137, "the new sandbox's own exit");
});

Deno.test("a sandbox whose task starts 15 s after its container is READY, never an inferred exit", async () => {
  await using w = await world();
  const { client } = await w.agent(["--resync-interval", "1s"]);
  const id = uniqueId("cni-slow");
  // As containerd's CRI does when CNI is slow: the container now, its task later.
  await w.containerd.ctr(NS, [
    "containers",
    "create",
    "--label",
    SANDBOX_LABEL,
    BUSYBOX_IMAGE,
    id,
    ...RUN_FOREVER,
  ]);
  await eventually("the container to be recorded", () => client.get(id));
  await sleep(15_000); // ~15 resyncs
  const before = await client.get(id);
  assertEquals(before.exitStatus, undefined, "no exit inferred while the container exists");
  await w.containerd.ctr(NS, ["tasks", "start", "-d", "--null-io", id]);
  const pid = (await w.c.task(id)).pid;
  await eventually("READY with the task's pid", async () => {
    const r = await client.get(id);
    return r.state === SandboxState.SANDBOX_READY && r.pid === pid;
  });
  await w.c.kill(id, "SIGKILL");
  assertEquals((await client.wait(id, { timeoutMs: 20_000 })).exitStatus, 137);
});

Deno.test("50 sandboxes SIGKILLed as the agent is SIGTERMed: after a restart each has its true status", async () => {
  await using w = await world();
  const ids = Array.from({ length: 50 }, (_, i) => uniqueId(`drain${i}`));
  for (let i = 0; i < ids.length; i += 5) {
    await Promise.all(ids.slice(i, i + 5).map((id) => w.c.run(id, RUN_FOREVER)));
  }
  const pids = await Promise.all(ids.map(async (id) => (await w.c.task(id)).pid));
  const first = await w.agent();
  for (const pid of pids) Deno.kill(pid, "SIGKILL");
  Deno.kill(first.agent.pid, "SIGTERM");
  assertEquals((await first.agent.status).code, 0);
  // The tasks' owner deletes them (as containerd's CRI does within ~15 ms): what the agent
  // did not commit before stopping is gone from containerd.
  await eventually("every task to be stopped", async () => {
    const tasks = await Promise.all(ids.map((id) => w.c.task(id)));
    return tasks.every((t) => t.status === "stopped");
  });
  for (const id of ids) await w.containerd.ctr(NS, ["tasks", "delete", id]);

  const second = await w.agent();
  const records = await Promise.all(ids.map((id) => second.client.get(id)));
  const wrong = records.filter((r) => r.exitStatus !== 137 || !r.exitStatusKnown);
  assertEquals(
    wrong.map((r) => `${r.id}: ${r.exitStatus} (${r.exitReason})`),
    [],
    `every exit committed before the stop; first agent's last lines:\n${
      first.agent.logs.slice(-15).map((l) => JSON.stringify(l)).join("\n")
    }`,
  );
});
