/**
 * `deno task bench`: every benchmark of issues 5 and 12 (shim wait's cost), one table,
 * the same figures as JSON.
 *
 * Usage: deno task bench [--quick] [--only NAME,...] [--out FILE] [--profile] [--agent-deno-flag FLAG]...
 *   --quick            small sizes and short windows (CI: the code must keep running)
 *   --only             run only these benchmarks (latency, burst, waiters, startup, idle, store,
 *                      shimcost, sandboxer)
 *   --out              where the JSON goes (default bench/results/latest.json)
 *   --profile          the latency benchmark runs its agents under --cpu-prof and summarises
 *                      their samples per burst (a table under the main one, and the JSON)
 *   --split-cpus       the latency benchmark's containerd (and so its shims and containers)
 *                      on CPU 0, this process, the agents and the observers on the others:
 *                      what the agent does when it does not share its cores with them
 *   --cgroups          the latency benchmark's containerd (its shims) in a cpu cgroup of its own and
 *                      this process, the agents and the observers in another, as systemd runs
 *                      containerd.service and podsandboxd.service (CPU shared per cgroup)
 *   --agent-deno-flag  extra `deno run` flag for every agent process (e.g. --cpu-prof,
 *                      --cpu-prof-dir=/tmp/prof, --v8-flags=...)
 *
 * Runs as root: the latency benchmark drives a private containerd with real containers.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { burstBenchmark, type BurstOutcome } from "./burst.ts";
import { type BenchContext, type BenchResult, Cleanups, tempDir } from "./context.ts";
import { idleBenchmark } from "./idle.ts";
import { latencyBenchmark } from "./latency.ts";
import { loadAverage, machine, pinToCpus } from "./proc.ts";
import { formatTable, type Row } from "./report.ts";
import { startupBenchmark } from "./startup.ts";
import { storeBenchmark } from "./store_size.ts";
import { shimCostBenchmark } from "./shim_cost.ts";
import { waitersBenchmark } from "./waiters.ts";
import { sandboxerBenchmark } from "./sandboxer.ts";

export const BENCHMARKS = [
  "latency",
  "burst",
  "waiters",
  "startup",
  "idle",
  "store",
  "shimcost",
  "sandboxer",
] as const;
export type BenchmarkName = typeof BENCHMARKS[number];

const DEFAULT_OUT = new URL("./results/latest.json", import.meta.url).pathname;

const USAGE =
  "usage: deno task bench [--quick] [--only latency,burst,waiters,startup,idle,store,shimcost,sandboxer] [--out FILE] [--profile] [--split-cpus] [--cgroups] [--agent-deno-flag FLAG]...";

/**
 * Moves this process (all its threads; children inherit it) off CPU 0, which the latency
 * benchmark gives its containerd. An error message, or undefined.
 */
async function splitCpus(): Promise<string | undefined> {
  const cores = navigator.hardwareConcurrency;
  if (cores < 2) return `needs 2 CPUs or more, this machine has ${cores}`;
  return await pinToCpus(Deno.pid, `1-${cores - 1}`);
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        quick: { type: "boolean", default: false },
        only: { type: "string" },
        out: { type: "string", default: DEFAULT_OUT },
        profile: { type: "boolean", default: false },
        "split-cpus": { type: "boolean", default: false },
        cgroups: { type: "boolean", default: false },
        "agent-deno-flag": { type: "string", multiple: true, default: [] },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    console.error(`bench: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const selected = (values.only?.split(",").map((s) => s.trim()).filter(Boolean) ??
    [...BENCHMARKS]) as BenchmarkName[];
  const unknown = selected.filter((s) => !(BENCHMARKS as readonly string[]).includes(s));
  if (unknown.length) {
    console.error(`bench: unknown benchmark ${unknown.join(", ")}\n${USAGE}`);
    return 2;
  }

  if (values["split-cpus"]) {
    const error = await splitCpus();
    if (error) {
      console.error(`bench: --split-cpus: ${error}`);
      return 2;
    }
  }

  const notes: string[] = [];
  const cleanup = new Cleanups();
  // Interrupted: stop what is running (agents, containerd, helpers), remove temp dirs.
  const onSignal = async () => {
    console.error("bench: interrupted; cleaning up");
    await cleanup.runAll();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const ctx: BenchContext = {
    cleanup,
    quick: values.quick,
    agentDenoFlags: values["agent-deno-flag"],
    profile: values.profile,
    splitCpus: values["split-cpus"],
    cgroups: values.cgroups,
    log: (message) => console.error(`bench: ${message}`),
    note: (message) => {
      notes.push(message);
      console.error(`bench: NOTE: ${message}`);
    },
  };
  const command = ["deno task bench", ...Deno.args].join(" ");
  const startedAt = new Date().toISOString();
  const loadAtStart = loadAverage();
  const results: Partial<Record<BenchmarkName, BenchResult | { error: string }>> = {};
  const rows: Row[] = [];
  const tables: Array<{ title: string; markdown: string }> = [];
  let failed = false;

  await using scratch = await tempDir(ctx, "bench");
  let burst: BurstOutcome | undefined;
  for (const name of BENCHMARKS) {
    if (!selected.includes(name)) continue;
    try {
      let result: BenchResult;
      switch (name) {
        case "latency":
          result = await latencyBenchmark(ctx);
          break;
        case "burst":
          burst = await burstBenchmark(ctx, { keepStateIn: join(scratch.path, "burst-state") });
          result = { params: burst.params, figures: burst.figures, rows: burst.rows };
          break;
        case "waiters":
          result = await waitersBenchmark(ctx, {
            burstLastExitToDurableMs: (burst?.figures.agent as
              | { lastExitToLastDurableMs: number }
              | undefined)?.lastExitToLastDurableMs,
          });
          break;
        case "startup":
          result = await startupBenchmark(ctx);
          break;
        case "idle":
          result = await idleBenchmark(ctx);
          break;
        case "store":
          result = await storeBenchmark(ctx, burst?.state);
          break;
        case "shimcost":
          result = await shimCostBenchmark(ctx);
          break;
        case "sandboxer":
          result = await sandboxerBenchmark(ctx);
          break;
      }
      results[name] = result;
      rows.push(...result.rows);
      tables.push(...(result.tables ?? []));
    } catch (err) {
      failed = true;
      const message = err instanceof Error ? err.stack ?? err.message : String(err);
      console.error(`bench: ${name} failed: ${message}`);
      results[name] = { error: message };
    }
  }

  const report = {
    command,
    quick: ctx.quick,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine: { ...machine(), loadAtStart, loadAtEnd: loadAverage() },
    benchmarks: results,
    rows,
    notes,
  };
  await Deno.mkdir(dirname(values.out), { recursive: true });
  await Deno.writeTextFile(values.out, JSON.stringify(report, null, 2) + "\n");

  const m = report.machine;
  console.log(formatTable(rows));
  for (const t of tables) console.log(`\n${t.title}:\n\n${t.markdown}`);
  console.log(
    `\n${m.cores} cores, ${m.cpuModel}, Linux ${m.kernel}, Deno ${m.deno}; ` +
      `load ${loadAtStart} at start, ${m.loadAtEnd} at end; \`${command}\`; JSON: ${values.out}`,
  );
  for (const n of notes) console.log(`\nNote: ${n}`);
  if (failed) console.error("bench: some benchmarks failed (see above)");
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
