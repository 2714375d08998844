/**
 * Benchmark 8: pods run through podsandboxd as containerd 2.1's sandbox controller, beside
 * containerd's own pod-sandbox controller in the same run and on the same node — the CRI's
 * RunPodSandbox and StopPodSandbox (and RemovePodSandbox) latency per pod, the two handlers
 * alternating pod by pod so both see the same load.
 *
 * @module
 */
import { HANDLER, SandboxerNode } from "../tests/harness/sandboxer_node.ts";
import type { BenchContext, BenchResult } from "./context.ts";
import { loadAverage, wallMs } from "./proc.ts";
import { row } from "./report.ts";
import { percentiles } from "./stats.ts";

interface Timings {
  run: number[];
  stop: number[];
  remove: number[];
}

export async function sandboxerBenchmark(ctx: BenchContext): Promise<BenchResult> {
  const pods = ctx.quick ? 3 : 30;
  ctx.log("sandboxer: starting containerd 2.1 with podsandboxd as a sandbox controller");
  const node = await SandboxerNode.start();
  const untrack = ctx.cleanup.add(() => node.stop());
  const ours: Timings = { run: [], stop: [], remove: [] };
  const theirs: Timings = { run: [], stop: [], remove: [] };
  const loads: number[] = [];
  try {
    for (let i = 0; i < pods; i++) {
      // Alternate who goes first, so neither always meets a warmer node.
      const order: Array<[string, Timings]> = i % 2 === 0
        ? [[HANDLER, ours], ["", theirs]]
        : [["", theirs], [HANDLER, ours]];
      for (const [handler, into] of order) {
        const t0 = wallMs();
        const pod = await node.cri.runPod(`bench-${i}`, { runtimeHandler: handler });
        const t1 = wallMs();
        await node.cri.stopPod(pod.id);
        const t2 = wallMs();
        await node.cri.removePod(pod.id);
        const t3 = wallMs();
        into.run.push(t1 - t0);
        into.stop.push(t2 - t1);
        into.remove.push(t3 - t2);
      }
      loads.push(loadAverage());
    }
  } finally {
    untrack();
    await node.stop();
  }
  const load = loads.at(-1) ?? loadAverage();
  const figures = {
    podsandboxd: {
      run: percentiles(ours.run),
      stop: percentiles(ours.stop),
      remove: percentiles(ours.remove),
    },
    containerdController: {
      run: percentiles(theirs.run),
      stop: percentiles(theirs.stop),
      remove: percentiles(theirs.remove),
    },
  };
  const rows = [];
  for (const [call, key] of [["RunPodSandbox", "run"], ["StopPodSandbox", "stop"]] as const) {
    for (const q of ["p50", "p99"] as const) {
      rows.push(row(
        "8 sandboxer",
        `CRI ${call} ${q}, through podsandboxd (containerd 2.1)`,
        figures.podsandboxd[key][q],
        "ms",
        {
          baseline: {
            what: "containerd's own controller",
            value: figures.containerdController[key][q],
          },
          load,
        },
      ));
    }
  }
  return { params: { pods, containerd: "2.1" }, figures, rows };
}
