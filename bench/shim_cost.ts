/**
 * Benchmark 7, what shim wait costs per followed sandbox (issue 12): the agent follows N
 * running sandboxes of the fake containerd, each with a fake shim (a small ttrpc server,
 * bench/baseline/fake_shims.ts) laid out in a containerd state directory, so that with
 * --shim-wait on it holds one connection and one pending Wait per sandbox. At N = 100
 * and 1,000: the agent's open file descriptors and RSS once every Wait is pending, the
 * CPU it used to get there (from its start), and its CPU over a window without events —
 * each beside the same agent with --shim-wait off in the same run; per sandbox,
 * (on − off) / N. Real shims (~10 MB each) would not fit 1,000 on this machine; the
 * agent's side of each connection is the same.
 *
 * @module
 */
import { join } from "node:path";
import { type BenchContext, type BenchResult, MB, sleep, tempDir } from "./context.ts";
import type { FakeContainerdServer } from "./fake_containerd_server.ts";
import { loadAverage, quiescent } from "./proc.ts";
import { type Row, row } from "./report.ts";
import { round } from "./stats.ts";
import { NAMESPACE, startAgent, startFake } from "./synthetic.ts";
import type { BenchAgent } from "./agent.ts";

const FAKE_SHIMS = new URL("./baseline/fake_shims.ts", import.meta.url).pathname;

/** The fake shims' process: how many Waits they hold. */
class FakeShims {
  waits = 0;
  readonly #process: Deno.ChildProcess;
  readonly #ready = Promise.withResolvers<void>();
  readonly #reading: Promise<void>;
  readonly #untrack: () => void;

  constructor(ctx: BenchContext, stateDir: string, idsFile: string) {
    this.#process = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", FAKE_SHIMS, stateDir, NAMESPACE, idsFile],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#untrack = ctx.cleanup.child(this.#process);
    this.#reading = this.#read();
    this.#process.status.then((s) =>
      this.#ready.reject(new Error(`fake shims exited (${s.code})`))
    );
    this.#ready.promise.catch(() => {});
  }

  ready(): Promise<void> {
    return this.#ready.promise;
  }

  async #read(): Promise<void> {
    let buffer = "";
    for await (const chunk of this.#process.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = JSON.parse(buffer.slice(0, nl)) as { ready?: boolean; waits?: number };
        buffer = buffer.slice(nl + 1);
        if (line.ready) this.#ready.resolve();
        if (line.waits !== undefined) this.waits = line.waits;
      }
    }
  }

  /** Resolves once the shims have received `count` Waits in all. */
  async waitsReach(count: number, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.waits < count) {
      if (Date.now() > deadline) {
        throw new Error(`shimcost: ${this.waits} of ${count} Waits reached the fake shims`);
      }
      await sleep(50);
    }
  }

  async close(): Promise<void> {
    try {
      this.#process.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await this.#process.stdin.close().catch(() => {});
    await this.#process.status;
    await this.#reading;
    this.#untrack();
  }
}

/** Open file descriptors of `pid`. */
function fds(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

interface Measured {
  fds: number;
  rssMB: number;
  /** CPU from the agent's start until every Wait was pending (or it was synced). */
  syncCpuMs: number;
  /** CPU over the window, as a share of one core. */
  idleCpuPercent: number;
  load: number;
}

async function measure(
  ctx: BenchContext,
  fake: FakeContainerdServer,
  dir: string,
  mode: "on" | "off",
  options: { shims: FakeShims; count: number; windowMs: number },
): Promise<Measured> {
  const before = options.shims.waits;
  let agent: BenchAgent | undefined;
  try {
    agent = await startAgent(ctx, fake, join(dir, `agent-${mode}`), ["--shim-wait", mode]);
    if (mode === "on") {
      await options.shims.waitsReach(before + options.count);
      await quiescent(agent.pid);
    }
    // /proc/PID/stat: the whole process, threads that ended included (10 ms ticks).
    const syncCpuMs = agent.cpuMs();
    const measured = { fds: fds(agent.pid), rssMB: agent.rss() / MB };
    const load0 = loadAverage();
    const t0 = performance.now();
    const c0 = agent.cpuMs();
    await sleep(options.windowMs);
    const idleCpuPercent = (agent.cpuMs() - c0) / (performance.now() - t0) * 100;
    return { ...measured, syncCpuMs, idleCpuPercent, load: Math.max(load0, loadAverage()) };
  } finally {
    await agent?.stop();
  }
}

export async function shimCostBenchmark(ctx: BenchContext): Promise<BenchResult> {
  const sizes = ctx.quick ? [10, 50] : [100, 1_000];
  const windowMs = ctx.quick ? 2_000 : 20_000;
  const rows: Row[] = [];
  const figures: Record<string, unknown> = {};
  for (const count of sizes) {
    await using dir = await tempDir(ctx, "shimcost");
    const { fake, ids } = await startFake(dir.path, count);
    const idsFile = join(dir.path, "ids");
    await Deno.writeTextFile(idsFile, ids.join("\n") + "\n");
    // The agent's --containerd-state is the fake containerd's directory's "state".
    const shims = new FakeShims(ctx, join(dir.path, "state"), idsFile);
    try {
      await shims.ready();
      ctx.log(`shimcost: ${count} sandboxes, shim wait off`);
      const off = await measure(ctx, fake, dir.path, "off", { shims, count, windowMs });
      ctx.log(`shimcost: ${count} sandboxes, shim wait on`);
      const on = await measure(ctx, fake, dir.path, "on", { shims, count, windowMs });
      const load = Math.max(on.load, off.load);
      const per = (k: "fds" | "rssMB" | "syncCpuMs") => (on[k] - off[k]) / count;
      figures[`sandboxes${count}`] = {
        on: roundAll(on),
        off: roundAll(off),
        perSandbox: {
          fds: round(per("fds")),
          rssKB: round(per("rssMB") * 1024),
          syncCpuMs: round(per("syncCpuMs")),
        },
      };
      const pair = (
        figure: string,
        k: keyof Omit<Measured, "load">,
        unit: string,
      ) =>
        rows.push(row("7 shimcost", `${figure}, ${count} sandboxes, shim wait on`, on[k], unit, {
          baseline: { what: "shim wait off", value: off[k] },
          load,
        }));
      pair("open file descriptors", "fds", "");
      rows.push(
        row("7 shimcost", `file descriptors per followed sandbox (${count})`, per("fds"), "", {
          load,
        }),
      );
      pair("RSS", "rssMB", "MB");
      rows.push(
        row("7 shimcost", `RSS per followed sandbox (${count})`, per("rssMB") * 1024, "KB", {
          load,
        }),
      );
      pair("CPU from start until every Wait is pending", "syncCpuMs", "ms");
      rows.push(
        row("7 shimcost", `start-up CPU per followed sandbox (${count})`, per("syncCpuMs"), "ms", {
          load,
        }),
      );
      pair(`idle CPU over ${windowMs / 1000} s`, "idleCpuPercent", "% of a core");
    } finally {
      await shims.close();
      await fake.close();
    }
  }
  return {
    params: { sizes, windowSeconds: windowMs / 1000, shims: "fake (ttrpc servers), task API v2" },
    figures,
    rows,
  };
}

function roundAll(m: Measured) {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, round(v)]));
}
