/**
 * The pieces the synthetic benchmarks share: a fake containerd with N sandboxes, the
 * agent on it, and a burst of exits timed until the agent has committed all of them.
 *
 * @module
 */
import { join } from "node:path";
import { BenchAgent } from "./agent.ts";
import type { BenchContext } from "./context.ts";
import { type EmitResult, FakeContainerdServer } from "./fake_containerd_server.ts";
import { quiescent } from "./proc.ts";

export const NAMESPACE = "k8s.io";

/** A fake containerd on `dir`/c.sock with `count` running sandboxes. */
export async function startFake(
  dir: string,
  count: number,
): Promise<{ fake: FakeContainerdServer; ids: string[] }> {
  const fake = await FakeContainerdServer.start(join(dir, "c.sock"), NAMESPACE);
  const ids = fake.addSandboxes(count);
  return { fake, ids };
}

/**
 * Starts the agent on the fake (state and socket under `dir`) and resolves once it
 * serves and has gone quiet (its first sync fully applied).
 */
export async function startAgent(
  ctx: BenchContext,
  fake: FakeContainerdServer,
  dir: string,
  args: string[] = [],
): Promise<BenchAgent> {
  await Deno.mkdir(dir, { recursive: true });
  const agent = await BenchAgent.start({
    containerdSocket: fake.socket,
    dir,
    namespace: NAMESPACE,
    args,
    denoFlags: ctx.agentDenoFlags,
    onAbnormalExit: ctx.note,
    cleanup: ctx.cleanup,
  });
  await quiescent(agent.pid);
  return agent;
}

export interface AgentBurst {
  emit: EmitResult;
  /** Wall-clock ms when the agent's last commit of the burst was logged. */
  lastDurableAt: number;
}

/** Emits the exits of `ids` and resolves once the agent has committed every one. */
export async function agentBurst(
  agent: BenchAgent,
  fake: FakeContainerdServer,
  ids: string[],
  timeoutMs = 300_000,
): Promise<AgentBurst> {
  const before = agent.exitLines.length;
  const burst = fake.prepareExits(ids);
  const committed = agent.until(() => agent.exitLines.length >= before + ids.length, timeoutMs);
  const emit = await fake.emit(burst);
  await committed;
  return { emit, lastDurableAt: agent.exitLines[before + ids.length - 1] };
}
