/**
 * End to end against a real, private containerd running real containers: the agent
 * runs as its own process with its deployed permission set and is driven through the
 * CLI and its socket.
 */
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { join } from "node:path";
import { NotFoundError } from "../src/errors.ts";
import { instantToMillis } from "../src/time.ts";
import { AgentProcess } from "./harness/agent.ts";
import { PrivateContainerd } from "./harness/containerd.ts";
import { Containers, importImages, uniqueId } from "./harness/containers.ts";
import { eventually } from "./harness/process.ts";
import { loadSandboxControllerClient } from "./harness/proto_client.ts";

const NS = "psd-e2e";
/** Exits with 7 on SIGTERM; otherwise runs until killed. */
const EXIT_7_ON_TERM = ["sh", "-c", "trap 'exit 7' TERM; sleep 100000 & wait"];
const RUN_FOREVER = ["sleep", "100000"];

Deno.test("podsandboxd against a real containerd", async (t) => {
  const containerd = await PrivateContainerd.start();
  const dir = await Deno.makeTempDir({ prefix: "psd-a-" });
  const c = new Containers(containerd, NS);
  let agent: AgentProcess | undefined;
  try {
    await importImages(containerd, NS);

    // Sandboxes that exist before the agent starts.
    const early = uniqueId("early");
    await c.run(early, RUN_FOREVER);
    const earlyExited = uniqueId("early-exited");
    await c.run(earlyExited, ["sh", "-c", "exit 5"]);
    await eventually(
      "the early sandbox to stop",
      async () => (await c.task(earlyExited)).status === "stopped",
    );

    agent = await AgentProcess.start({ containerdSocket: containerd.socket, dir, namespace: NS });
    const a = agent;

    /**
     * Starts a CLI wait and resolves once the agent has registered the waiter; the
     * CLI's result is in `done` (wrapped: an async function would flatten it).
     */
    const blockedWait = async (id: string, ...flags: string[]) => {
      // Bounded: a test must fail, not hang, when an exit is never answered.
      const waiting = a.cli("wait", id, "--json", "--timeout", "60s", ...flags);
      await a.waitForLog((l) => l.message === `waiting for sandbox ${NS}/${id}`, 20_000);
      return { done: waiting };
    };

    await t.step(
      "a sandbox created before the agent started is discovered; one that stopped before has its exit",
      async () => {
        const running = JSON.parse((await a.cli("status", early, "--json")).stdout);
        assertEquals(running.state, "SANDBOX_READY");
        assertEquals(running.pid, (await c.task(early)).pid);
        const exited = JSON.parse((await a.cli("status", earlyExited, "--json")).stdout);
        assertEquals(exited.state, "SANDBOX_NOTREADY");
        assertEquals(exited.exitStatus, 5);
        assertEquals(exited.exitedAt, (await c.task(earlyExited)).exitedAt);
      },
    );

    const seven = uniqueId("seven");
    await t.step(
      "a sandbox that exits 7: wait returns 7 at the real exit time; status is NOTREADY",
      async () => {
        await c.run(seven, EXIT_7_ON_TERM);
        const waiting = await blockedWait(seven);
        const killedAt = Date.now();
        await c.kill(seven, "SIGTERM");
        const res = await waiting.done;
        assertEquals(res.code, 0, res.stderr);
        const out = JSON.parse(res.stdout);
        assertEquals(Object.keys(out).sort(), ["exitStatus", "exitedAt", "id"]);
        assertEquals(out.id, seven);
        assertEquals(out.exitStatus, 7);
        const real = await c.task(seven);
        assertEquals(real.status, "stopped");
        assertEquals(out.exitedAt, real.exitedAt, "exitedAt is containerd's own exit time");
        assert(
          Math.abs(instantToMillis(out.exitedAt) - killedAt) < 1_000,
          `exitedAt ${out.exitedAt} within 1 s of the kill`,
        );
        assertMatch(out.exitedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
        const status = JSON.parse((await a.cli("status", seven, "--json")).stdout);
        assertEquals(status.state, "SANDBOX_NOTREADY");
        assertEquals(status.exitStatus, 7);
        assertEquals(status.exitedAt, out.exitedAt);
      },
    );

    await t.step("SIGKILL of a sandbox's init process: wait returns 137", async () => {
      const id = uniqueId("killed");
      await c.run(id, RUN_FOREVER);
      const waiting = await blockedWait(id);
      await c.kill(id, "SIGKILL");
      const res = await waiting.done;
      assertEquals(res.code, 0, res.stderr);
      assertEquals(JSON.parse(res.stdout).exitStatus, 137);
    });

    await t.step("an exec inside a sandbox exits: the sandbox stays READY", async () => {
      const id = uniqueId("exec");
      await c.run(id, RUN_FOREVER);
      const waiting = await blockedWait(id);
      assertEquals(await c.exec(id, "e1", ["sh", "-c", "exit 3"]), 3);
      // The exec's TaskExit is dispatched before anything later; the sandbox is untouched.
      const status = JSON.parse((await a.cli("status", id, "--json")).stdout);
      assertEquals(status.state, "SANDBOX_READY");
      assertEquals(status.exitStatus, undefined);
      await c.kill(id, "SIGKILL");
      // The blocked waiter was not woken by the exec: it reports the sandbox's own exit.
      assertEquals(JSON.parse((await waiting.done).stdout).exitStatus, 137);
    });

    await t.step(
      "an unlabelled container exits: the agent has no record of it (NOT_FOUND)",
      async () => {
        const plain = uniqueId("plain");
        await c.run(plain, ["sh", "-c", "exit 3"], { sandbox: false });
        await eventually(
          "the plain container to stop",
          async () => (await c.task(plain)).status === "stopped",
        );
        // A sandbox created after it: once its exit is answered, the plain container's
        // earlier events have been handled too.
        const later = uniqueId("later");
        await c.run(later, RUN_FOREVER);
        const waiting = await blockedWait(later);
        await c.kill(later);
        assertEquals((await waiting.done).code, 0);
        const res = await a.cli("status", plain);
        assertEquals(res.code, 1);
        assertMatch(res.stderr, new RegExp(`sandbox "${plain}" not found in namespace ${NS}`));
        const list = JSON.parse((await a.cli("list", "--json")).stdout) as Array<{ id: string }>;
        assert(
          !list.some((s) => s.id === plain),
          "plain container not listed",
        );
        assert(list.some((s) => s.id === later), "the sandbox is listed");
      },
    );

    await t.step("wait on an unknown id: NOT_FOUND, CLI exit 1 naming the id", async () => {
      const res = await a.cli("wait", "no-such-sandbox");
      assertEquals(res.code, 1);
      assertMatch(res.stderr, /sandbox "no-such-sandbox" not found/);
      const client = a.client();
      try {
        await assertRejects(() => client.wait("no-such-sandbox"), NotFoundError);
      } finally {
        client.close();
      }
    });

    await t.step(
      "wait with a deadline on a running sandbox: deadline error, waiter released",
      async () => {
        const res = await a.cli("wait", early, "--timeout", "300ms");
        assertEquals(res.code, 1);
        assertMatch(res.stderr, /still running after 300ms/);
        // The client deadline cancels the call, or the server timer fires first: either
        // way the agent drops the waiter.
        await a.waitForLog((l) =>
          l.message?.startsWith(`stopped waiting for sandbox ${NS}/${early}: `) === true
        );
      },
    );

    await t.step("usage errors exit 2; --help exits 0", async () => {
      assertEquals((await a.cli("wait")).code, 2);
      assertEquals((await a.cli("wait", "a", "b")).code, 2);
      assertEquals((await a.cli("wait", "x", "--timeout", "soon")).code, 2);
      assertEquals((await a.cli("list", "--state", "gone")).code, 2);
      assertEquals((await a.cli("status", "bad id!")).code, 2);
      const help = await a.cli("wait", "--help");
      assertEquals(help.code, 0);
      assertMatch(help.stdout, /Usage: podsandboxd wait ID/);
    });

    await t.step(
      "the containerd-shaped Wait/Status/Platform through a client built from the .proto alone",
      async () => {
        const api = await loadSandboxControllerClient(a.socket);
        try {
          const md = { "containerd-namespace": NS };
          const wait = await api.call("Wait", { sandbox_id: seven }, md);
          assertEquals(wait.exit_status, 7);
          assertEquals(
            wait.exited_at.seconds,
            String(Math.floor(instantToMillis((await c.task(seven)).exitedAt!) / 1000)),
          );
          const status = await api.call("Status", { sandbox_id: early, verbose: true }, md);
          assertEquals(status.sandbox_id, early);
          assertEquals(status.state, "SANDBOX_READY");
          assertEquals(status.pid, (await c.task(early)).pid);
          assertEquals(status.info.namespace, NS);
          const exited = await api.call("Status", { sandbox_id: seven }, md);
          assertEquals(exited.state, "SANDBOX_NOTREADY");
          assert(exited.exited_at !== null);
          const platform = await api.call("Platform", { sandbox_id: early }, md);
          assertEquals(platform.platform.os, "linux");
          assertEquals(
            platform.platform.architecture,
            Deno.build.arch === "x86_64" ? "amd64" : "arm64",
          );
          const missing = await api.call("Wait", { sandbox_id: "missing" }, md).catch((e) => e);
          assertEquals(missing.code, 5, "NOT_FOUND");
          const stop = await api.call("Stop", { sandbox_id: early }, md).catch((e) => e);
          assertEquals(stop.code, 12, "UNIMPLEMENTED");
          assertMatch(
            stop.details,
            /Controller\/Stop is not served: this podsandboxd only observes/,
          );
        } finally {
          api.close();
        }
      },
    );

    await t.step("--reap=never leaves the exited task in containerd", async () => {
      // Long after seven's exit was recorded, its task is still there, STOPPED.
      const task = await c.task(seven);
      assertEquals(task.status, "stopped");
      assert(!a.logs.some((l) => /tasks\.(Delete|Kill)/.test(JSON.stringify(l))));
    });

    await t.step("agent restarted: wait on an exited sandbox answers from the store", async () => {
      const before = JSON.parse((await a.cli("status", seven, "--json")).stdout);
      assertEquals((await a.stop()).code, 0);
      // Gone from containerd: only the agent's store still knows the exit.
      await c.remove(seven);
      agent = await AgentProcess.start({ containerdSocket: containerd.socket, dir, namespace: NS });
      const res = await agent.cli("wait", seven, "--json");
      assertEquals(res.code, 0, res.stderr);
      const out = JSON.parse(res.stdout);
      assertEquals(out.exitStatus, 7);
      assertEquals(out.exitedAt, before.exitedAt);
      const status = JSON.parse((await agent.cli("status", seven, "--json")).stdout);
      assertEquals(status.exitSource, before.exitSource, "as recorded before the restart");
      assert(["event", "shim"].includes(status.exitSource), status.exitSource);
      assert(status.deletedAt, "the removal of the container is recorded");
    });

    await t.step("--reap=always deletes the exited sandbox's task", async () => {
      const ns = "psd-e2e-reap";
      await importImages(containerd, ns);
      const reapDir = join(dir, "reap");
      await Deno.mkdir(reapDir);
      const reaper = await AgentProcess.start({
        containerdSocket: containerd.socket,
        dir: reapDir,
        namespace: ns,
        // These test sandboxes carry the CRI label but no CRI owns them: this agent does.
        args: ["--reap", "always", "--reap-cri-sandboxes"],
      });
      const rc = new Containers(containerd, ns);
      try {
        const id = uniqueId("reaped");
        await rc.run(id, RUN_FOREVER);
        const waiting = reaper.cli("wait", id, "--json", "--timeout", "60s");
        await reaper.waitForLog((l) => l.message === `waiting for sandbox ${ns}/${id}`, 20_000);
        await rc.kill(id);
        const res = await waiting;
        assertEquals(JSON.parse(res.stdout).exitStatus, 137);
        // Waiters wake only after the delete: the task is gone by now.
        await assertRejects(() => rc.task(id), NotFoundError);
      } finally {
        rc.close();
        await reaper.stop();
      }
    });
  } finally {
    await agent?.stop();
    c.close();
    await containerd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
