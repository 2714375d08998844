/**
 * Benchmark 4, start-up: N records already in the store (a previous run of the agent
 * recorded the fake's N sandboxes) and N sandboxes in the fake containerd. Figure: from
 * spawning the process to the first answer on its socket (a Platform call), median of
 * several starts. Baseline: a bare `deno run` of a hello world, spawn → its output.
 *
 * @module
 */
import { join } from "node:path";
import { AgentClient } from "../src/cli/client.ts";
import { BenchAgent } from "./agent.ts";
import { type BenchContext, type BenchResult, sleep, tempDir } from "./context.ts";
import { loadAverage, wallMs } from "./proc.ts";
import { row } from "./report.ts";
import { median, round } from "./stats.ts";
import { NAMESPACE, startAgent, startFake } from "./synthetic.ts";

const HELLO = new URL("./baseline/hello.ts", import.meta.url).pathname;

/** Resolves with the wall-clock ms of the first answer on `socket`. */
async function firstAnswer(socket: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  // Connecting is cheap; a gRPC client's reconnect backoff (≥ 100 ms) would blur the figure.
  for (;;) {
    try {
      (await Deno.connect({ transport: "unix", path: socket })).close();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`nothing listens on ${socket}`);
      await sleep(2);
    }
  }
  const client = new AgentClient(socket, { namespace: NAMESPACE });
  try {
    for (;;) {
      try {
        await client.platform();
        return wallMs();
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await sleep(2);
      }
    }
  } finally {
    client.close();
  }
}

/** Spawn → first line on stdout of a bare hello world. */
async function helloWorld(): Promise<number> {
  const start = wallMs();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", HELLO],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const at = wallMs();
  reader.releaseLock();
  await child.status;
  if (text.trim() !== "hello") throw new Error(`hello world printed ${JSON.stringify(text)}`);
  return at - start;
}

export async function startupBenchmark(ctx: BenchContext): Promise<BenchResult> {
  const count = ctx.quick ? 1_000 : 10_000;
  const runs = ctx.quick ? 2 : 5;
  await using dir = await tempDir(ctx, "startup");
  const { fake } = await startFake(dir.path, count);
  try {
    const agentDir = join(dir.path, "agent");
    ctx.log(`startup: recording ${count} sandboxes`);
    await (await startAgent(ctx, fake, agentDir)).stop();

    const load = loadAverage();
    const agentMs: number[] = [];
    const servingLogMs: number[] = [];
    const helloMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      ctx.log(`startup: start ${i + 1}/${runs} with ${count} records and ${count} sandboxes`);
      const agent = await BenchAgent.start({
        containerdSocket: fake.socket,
        dir: agentDir,
        namespace: NAMESPACE,
        denoFlags: ctx.agentDenoFlags,
        onAbnormalExit: ctx.note,
        cleanup: ctx.cleanup,
        noWait: true,
      });
      try {
        const answered = await firstAnswer(agent.socket);
        agentMs.push(answered - agent.spawnedAt);
        await agent.until(() => agent.servingAt !== undefined, 10_000);
        servingLogMs.push(agent.servingAt! - agent.spawnedAt);
      } finally {
        await agent.stop();
      }
      helloMs.push(await helloWorld());
    }
    const agentMedian = median(agentMs);
    const helloMedian = median(helloMs);
    return {
      params: { records: count, sandboxes: count, starts: runs },
      figures: {
        startToAnswerMs: agentMs.map(round),
        startToServingLogMs: servingLogMs.map(round),
        helloWorldMs: helloMs.map(round),
        medianMs: round(agentMedian),
        helloMedianMs: round(helloMedian),
        load,
      },
      rows: [
        row(
          "4 startup",
          `start → socket answers (${count} records, ${count} sandboxes; median of ${runs})`,
          agentMedian,
          "ms",
          {
            baseline: { what: "deno run hello world", value: helloMedian },
            target: { text: "≤ 1 s", met: agentMedian <= 1_000 },
            load,
          },
        ),
      ],
    };
  } finally {
    await fake.close();
  }
}
