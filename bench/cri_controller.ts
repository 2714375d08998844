/**
 * Part of the latency benchmark on containerd 2.1: the same CRI pods answered by
 * podsandboxd and by containerd's own pod-sandbox controller (its Controller API on
 * containerd's socket, sandboxer "podsandbox"), both Waits blocked before the kill. Per
 * pod: exit → each answer, and agent answer − containerd's answer; for exits one at a time
 * and for a burst killed at once.
 *
 * @module
 */
import { join } from "node:path";
import { instantToMillis } from "../src/time.ts";
import { CRI_NAMESPACE, CriNode } from "../tests/harness/cri.ts";
import { SandboxControllerClient } from "../tests/harness/sandbox_api.ts";
import { BenchAgent } from "./agent.ts";
import { type BenchContext, sleep } from "./context.ts";
import { loadAverage, quiescent, wallMs } from "./proc.ts";
import { type Percentiles, percentiles } from "./stats.ts";

/** The version whose CRI runs containerd's own controller. */
export const CONTROLLER_VERSION = "2.1";

export interface ControllerPhase {
  pods: number;
  /** Exit → podsandboxd's Wait answer. */
  agent: Percentiles;
  /** Exit → containerd's controller's Wait answer. */
  controller: Percentiles;
  /** Per pod: podsandboxd's answer − containerd's (negative: podsandboxd first). */
  agentMinusController: Percentiles;
  load: number;
}

export interface ControllerRound {
  single: ControllerPhase;
  burst: ControllerPhase;
}

interface Answer {
  at: number;
  exitedAt: number;
}

/** Runs the round on a CRI node of its own: `single` pods killed one per `spacingMs`, then `count` at once. */
export async function criControllerRound(
  ctx: BenchContext,
  options: { count: number; single: number; spacingMs: number; dir: string },
): Promise<ControllerRound> {
  ctx.log(`latency: starting containerd ${CONTROLLER_VERSION} with its CRI`);
  const node = await CriNode.start({ version: CONTROLLER_VERSION });
  const untrack = ctx.cleanup.add(() => node.stop());
  let agent: BenchAgent | undefined;
  const ours = new Map<string, Answer>();
  const theirs = new Map<string, Answer>();
  try {
    ctx.log(`latency: running ${options.single + options.count} CRI pods`);
    const pods = await node.cri.runPods("bench", options.single + options.count, {
      concurrency: 8,
    });
    agent = await BenchAgent.start({
      containerdSocket: node.socket,
      dir: join(options.dir, "cri"),
      namespace: CRI_NAMESPACE,
      denoFlags: ctx.agentDenoFlags,
      onAbnormalExit: ctx.note,
      cleanup: ctx.cleanup,
    });
    const agentApi = new SandboxControllerClient(agent.socket, {
      name: "podsandboxd",
      namespace: CRI_NAMESPACE,
    });
    const containerdApi = new SandboxControllerClient(node.socket, {
      name: `containerd ${CONTROLLER_VERSION}`,
      sandboxer: "podsandbox",
      namespace: CRI_NAMESPACE,
    });
    try {
      const pids = new Map<string, number>();
      for (const pod of pods) pids.set(pod.id, (await node.task(pod.id)).pid);
      // The agent follows every pod before any Wait goes out.
      for (const pod of pods) {
        for (;;) {
          const s = await agentApi.status(pod.id).catch(() => undefined);
          if (s?.state === "SANDBOX_READY") break;
          await sleep(20);
        }
      }
      const record =
        (into: Map<string, Answer>, id: string) =>
        (answer: { exitStatus: number; exitedAt?: string }) => {
          if (answer.exitStatus !== 137 || !answer.exitedAt) {
            throw new Error(`latency: Wait ${id} answered ${JSON.stringify(answer)}`);
          }
          into.set(id, { at: wallMs(), exitedAt: instantToMillis(answer.exitedAt) });
        };
      const waits = pods.flatMap((pod) => [
        agentApi.wait(pod.id, 300_000).then(record(ours, pod.id)),
        containerdApi.wait(pod.id, 300_000).then(record(theirs, pod.id)),
      ]);
      // Blocked on both sides once the agent and containerd have gone quiet.
      await quiescent(agent.pid, { quietMs: 500 });
      await quiescent(node.containerd.pid!, { quietMs: 500 });
      if (ours.size + theirs.size > 0) throw new Error("latency: Waits answered before the kill");

      const done = (ids: string[]) => ids.every((id) => ours.has(id) && theirs.has(id));
      const singles = pods.slice(0, options.single).map((p) => p.id);
      const burst = pods.slice(options.single).map((p) => p.id);

      ctx.log(`latency: SIGKILL to ${singles.length} CRI pods, one every ${options.spacingMs} ms`);
      const singleLoad = loadAverage();
      for (const id of singles) {
        Deno.kill(pids.get(id)!, "SIGKILL");
        await sleep(options.spacingMs);
      }
      while (!done(singles)) await sleep(20);

      ctx.log(`latency: SIGKILL to ${burst.length} CRI pods at once`);
      const burstLoad = loadAverage();
      for (const id of burst) Deno.kill(pids.get(id)!, "SIGKILL");
      await Promise.all(waits);

      const phase = (ids: string[], load: number): ControllerPhase => ({
        pods: ids.length,
        agent: percentiles(ids.map((id) => ours.get(id)!.at - ours.get(id)!.exitedAt)),
        controller: percentiles(ids.map((id) => theirs.get(id)!.at - theirs.get(id)!.exitedAt)),
        agentMinusController: percentiles(ids.map((id) => ours.get(id)!.at - theirs.get(id)!.at)),
        load,
      });
      return { single: phase(singles, singleLoad), burst: phase(burst, burstLoad) };
    } finally {
      agentApi.close();
      containerdApi.close();
    }
  } finally {
    await agent?.stop();
    ctx.log(`latency: stopping containerd ${CONTROLLER_VERSION}`);
    untrack();
    await node.stop();
  }
}
