/**
 * Benchmark 2, burst throughput: a fake containerd lists N running sandboxes, then
 * writes their N TaskExits as fast as the stream takes them. Figure: exits recorded
 * durably per second (first envelope written → the agent's last commit). Baseline: the
 * same stream subscribed and decoded with no store (bench/baseline/decode_only.ts, its
 * own process like the agent).
 *
 * @module
 */
import { join } from "node:path";
import { KvSandboxStore, STATE_FILE } from "../src/store/kv_store.ts";
import type { SandboxRecord } from "../src/store/types.ts";
import { type BenchContext, type BenchResult, tempDir } from "./context.ts";
import type { FakeContainerdServer } from "./fake_containerd_server.ts";
import { loadAverage } from "./proc.ts";
import { row } from "./report.ts";
import { round } from "./stats.ts";
import { agentBurst, NAMESPACE, startAgent, startFake } from "./synthetic.ts";

const DECODE_ONLY = new URL("./baseline/decode_only.ts", import.meta.url).pathname;

export interface BurstOutcome extends BenchResult {
  /** The agent's state after the burst (N records with exits), for the store-size figure. */
  state?: { dir: string; records: SandboxRecord[] };
}

/** Runs the no-store decoder against the fake's burst; returns its rate in exits/s. */
async function decodeOnly(ctx: BenchContext, fake: FakeContainerdServer, ids: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", DECODE_ONLY, fake.socket, NAMESPACE, String(ids.length)],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const untrack = ctx.cleanup.child(child);
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const nextLine = async (): Promise<string> => {
    for (;;) {
      const nl = buffer.indexOf("\n");
      if (nl >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        return line;
      }
      const { value, done } = await lines.read();
      if (done) throw new Error("decode_only ended without output");
      buffer += value;
    }
  };
  try {
    if ((await nextLine()) !== "ready") throw new Error("decode_only did not report ready");
    const burst = fake.prepareExits(ids);
    const emit = await fake.emit(burst);
    const result = JSON.parse(await nextLine()) as { firstAt: number; lastAt: number };
    return { emit, lastDecodedAt: result.lastAt };
  } finally {
    lines.releaseLock();
    await child.stdout.cancel().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited by itself.
    }
    await child.status;
    untrack();
  }
}

export async function burstBenchmark(
  ctx: BenchContext,
  options: { keepStateIn?: string } = {},
): Promise<BurstOutcome> {
  const count = ctx.quick ? 1_000 : 10_000;
  await using dir = await tempDir(ctx, "burst");
  const { fake, ids } = await startFake(dir.path, count);
  try {
    const load = loadAverage();
    ctx.log(`burst: ${count} exits, no-store decoder`);
    const base = await decodeOnly(ctx, fake, ids);
    const baseSeconds = (base.lastDecodedAt - base.emit.firstAt) / 1000;

    fake.reviveAll();
    ctx.log(`burst: agent syncing ${count} running sandboxes`);
    const agentDir = join(dir.path, "agent");
    const agent = await startAgent(ctx, fake, agentDir);
    let measured;
    try {
      ctx.log(`burst: ${count} exits, agent`);
      measured = await agentBurst(agent, fake, ids);
    } finally {
      await agent.stop();
    }
    const seconds = (measured.lastDurableAt - measured.emit.firstAt) / 1000;

    // Durably in the store: every sandbox has its exit after the agent stopped.
    const store = await KvSandboxStore.open(join(agent.stateDir, STATE_FILE));
    let records: SandboxRecord[];
    try {
      records = await store.list({ namespace: NAMESPACE });
    } finally {
      store.close();
    }
    const withExit = records.filter((r) => r.exit?.status === 137).length;
    if (withExit !== count) {
      throw new Error(`burst: ${withExit} of ${count} exits are in the store after the burst`);
    }
    let state: BurstOutcome["state"];
    if (options.keepStateIn) {
      await Deno.rename(agent.stateDir, options.keepStateIn);
      state = { dir: options.keepStateIn, records };
    }

    const rate = count / seconds;
    const baseRate = count / baseSeconds;
    const emitSeconds = (measured.emit.lastAt - measured.emit.firstAt) / 1000;
    const lastExitToDurableMs = measured.lastDurableAt - measured.emit.lastAt;
    return {
      params: { sandboxes: count },
      figures: {
        agent: {
          exitsPerSecond: round(rate),
          seconds: round(seconds),
          emitSeconds: round(emitSeconds),
          lastExitToLastDurableMs: round(lastExitToDurableMs),
        },
        decodeOnly: { exitsPerSecond: round(baseRate), seconds: round(baseSeconds) },
        recordsWithExit: withExit,
        load,
      },
      rows: [
        row("2 burst", `exits recorded durably, ${count} TaskExits`, rate, "exits/s", {
          baseline: { what: "decoded, no store", value: baseRate },
          target: { text: "≥ 5,000 exits/s", met: rate >= 5_000 },
          load,
        }),
        row("2 burst", "first exit → all durable", seconds * 1000, "ms", {
          baseline: { what: "all decoded, no store", value: baseSeconds * 1000 },
          load,
        }),
      ],
      state,
    };
  } finally {
    await fake.close();
  }
}
