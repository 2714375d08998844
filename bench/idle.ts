/**
 * Benchmark 5, idle cost: the agent follows N running sandboxes of the fake containerd
 * and nothing happens for a while. Figures: CPU time (user + system, from
 * /proc/PID/stat) as a share of one core, and RSS at the end. Baseline: a bare Deno
 * process that only waits, measured over the same window.
 *
 * The window starts once the agent has synced and gone quiet; with the default resync
 * interval (1 min) a 60 s window contains one periodic resync, as a deployed agent's would.
 *
 * @module
 */
import { join } from "node:path";
import { type BenchContext, type BenchResult, MB, sleep, tempDir } from "./context.ts";
import { cpuMs, loadAverage, rssBytes } from "./proc.ts";
import { row } from "./report.ts";
import { round } from "./stats.ts";
import { startAgent, startFake } from "./synthetic.ts";

const IDLE = new URL("./baseline/idle.ts", import.meta.url).pathname;

export async function idleBenchmark(ctx: BenchContext): Promise<BenchResult> {
  const count = ctx.quick ? 100 : 1_000;
  const windowMs = ctx.quick ? 3_000 : 61_000;
  await using dir = await tempDir(ctx, "idle");
  const { fake } = await startFake(dir.path, count);
  const baseline = new Deno.Command(Deno.execPath(), {
    args: ["run", IDLE],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const untrack = ctx.cleanup.child(baseline);
  try {
    const reader = baseline.stdout.pipeThrough(new TextDecoderStream()).getReader();
    await reader.read(); // "ready"
    reader.releaseLock();
    ctx.log(`idle: agent syncing ${count} running sandboxes`);
    const agent = await startAgent(ctx, fake, join(dir.path, "agent"));
    try {
      ctx.log(`idle: ${windowMs / 1000} s without events`);
      const load0 = loadAverage();
      const a0 = agent.cpuMs();
      const b0 = cpuMs(baseline.pid);
      const t0 = performance.now();
      await sleep(windowMs);
      const a1 = agent.cpuMs();
      const b1 = cpuMs(baseline.pid);
      const elapsed = performance.now() - t0;
      const load = Math.max(load0, loadAverage());
      const agentPercent = (a1 - a0) / elapsed * 100;
      const basePercent = (b1 - b0) / elapsed * 100;
      const rss = agent.rss();
      const baseRss = rssBytes(baseline.pid);
      return {
        params: { sandboxes: count, windowSeconds: round(elapsed / 1000) },
        figures: {
          agentCpuMs: round(a1 - a0),
          agentCpuPercentOfOneCore: round(agentPercent),
          baselineCpuMs: round(b1 - b0),
          baselineCpuPercentOfOneCore: round(basePercent),
          agentRssMB: round(rss / MB),
          baselineRssMB: round(baseRss / MB),
          load,
        },
        rows: [
          row(
            "5 idle",
            `CPU, ${count} sandboxes, ${round(elapsed / 1000)} s without events`,
            agentPercent,
            "% of a core",
            {
              baseline: { what: "idle bare deno", value: basePercent },
              target: { text: "≤ 1 %", met: agentPercent <= 1 },
              load,
            },
          ),
          row("5 idle", `RSS, ${count} sandboxes`, rss / MB, "MB", {
            baseline: { what: "idle bare deno", value: baseRss / MB },
            load,
          }),
        ],
      };
    } finally {
      await agent.stop();
    }
  } finally {
    try {
      baseline.kill("SIGKILL");
    } catch {
      // Gone already.
    }
    await baseline.stdout.cancel().catch(() => {});
    await baseline.status;
    untrack();
    await fake.close();
  }
}
