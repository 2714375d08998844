/**
 * Never lose an exit, with containerd's CRI: containerd restarted while a pod's sandbox
 * dies. On its restart the CRI's recovery deletes the dead sandbox's task within ms,
 * before any client can reconnect, and the exit status is gone for everyone. The agent's
 * record must state what is known: the real status if it learned it, otherwise the
 * honest "unknown" — never an invented number.
 */
import { SandboxState } from "../src/gen/podsandboxd/v1/podsandboxd.ts";
import { NotFoundError } from "../src/errors.ts";
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import { AgentProcess } from "./harness/agent.ts";
import { CRI_NAMESPACE, CriNode } from "./harness/cri.ts";
import { eventually } from "./harness/process.ts";

Deno.test("CRI pods whose sandboxes die while containerd restarts: the records state what is known", async () => {
  const node = await CriNode.start();
  const dir = await Deno.makeTempDir({ prefix: "psd-crif-" });
  let agent: AgentProcess | undefined;
  try {
    // Without shim wait (which keeps the true status: shim_wait_e2e_test.ts), what is
    // left is what containerd still holds when the agent reconnects.
    agent = await AgentProcess.start({
      containerdSocket: node.socket,
      dir,
      namespace: CRI_NAMESPACE,
      args: ["--shim-wait", "off"],
    });
    const client = agent.client();
    try {
      const pods = await Promise.all([node.cri.runPod("outage-a"), node.cri.runPod("outage-b")]);
      const pids = await Promise.all(pods.map(async (pod) => {
        await eventually(
          `${pod.name} READY in the agent`,
          async () =>
            (await client.get(pod.id).catch(() => undefined))?.state === SandboxState.SANDBOX_READY,
        );
        return (await node.task(pod.id)).pid;
      }));

      await node.containerd.kill("SIGKILL");
      for (const pid of pids) Deno.kill(pid, "SIGKILL");
      await new Promise((r) => setTimeout(r, 1_000)); // the outage is the scenario
      await node.containerd.boot();

      for (const pod of pods) {
        const exit = await client.wait(pod.id, { timeoutMs: 20_000 });
        const record = await client.get(pod.id);
        // The CRI's recovery deletes the task (usually before the agent reconnects, then the
        // status is gone; under load the agent may still find it STOPPED and know it).
        await eventually(
          "the CRI to delete the dead sandbox's task",
          async () =>
            await node.task(pod.id).then(() => false, (err) => err instanceof NotFoundError),
        );
        if (record.exitStatusKnown) {
          assertEquals(exit.exitStatus, 137, "a known status is the real one (SIGKILL)");
        } else {
          assertEquals(exit.exitStatus, 255);
          assertEquals(record.exitSource, 4, "EXIT_SOURCE_TASK_MISSING");
          assertMatch(record.exitReason, /gone before its exit was seen/);
        }
        assert(exit.exitedAt, "an exit time is recorded");
      }

      // And after the outage the agent follows pods as before.
      // The CRI answers Version before its restart's recovery is done, and refuses pods
      // ("server is not initialized yet") until then.
      const after = await eventually(
        "the CRI to take pods again after the restart",
        () => node.cri.runPod("after"),
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      await eventually(
        "the new pod READY in the agent",
        async () =>
          (await client.get(after.id).catch(() => undefined))?.state === SandboxState.SANDBOX_READY,
      );
      Deno.kill((await node.task(after.id)).pid, "SIGKILL");
      assertEquals((await client.wait(after.id, { timeoutMs: 20_000 })).exitStatus, 137);
    } finally {
      client.close();
    }
  } finally {
    await agent?.stop();
    await node.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
