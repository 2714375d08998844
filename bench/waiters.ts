/**
 * Benchmark 3, waiters: N concurrent `Wait` calls blocked on the agent's socket (one per
 * sandbox of the fake containerd, over N/50 client connections), then the N exits in
 * one burst. Figures: the agent's RSS growth with the calls blocked and after they were
 * answered; the time from the last exit written to the last answer received.
 *
 * Baseline, in the same run: a bare grpc-js server (bench/baseline/held_calls.ts) that
 * holds the same N calls with no agent behind them, then answers them all on cue — what
 * the gRPC stack alone costs per blocked call and per answer.
 *
 * @module
 */
import { join } from "node:path";
import { AgentClient } from "../src/cli/client.ts";
import { type BenchContext, type BenchResult, MB, sleep, tempDir } from "./context.ts";
import { cpuMs, loadAverage, peakRssBytes, quiescent, rssBytes, wallMs } from "./proc.ts";
import { row } from "./report.ts";
import { percentiles, round } from "./stats.ts";
import { NAMESPACE, startAgent, startFake } from "./synthetic.ts";

const HELD_CALLS = new URL("./baseline/held_calls.ts", import.meta.url).pathname;

/**
 * Waits per client channel (one HTTP/2 connection each). Below the agent's streams per
 * connection (src/server/connection_cap.ts): a client that multiplexes more calls than that
 * on one connection is asked to move on, and grpc-js-on-Deno clients then see some fail.
 */
const WAITS_PER_CHANNEL = 50;

/** N waits spread over N/50 channels; no deadline (like `wait` without --timeout). */
class Waits {
  readonly answeredAt: number[] = [];
  readonly done: Promise<void>;
  readonly #clients: AgentClient[] = [];
  readonly #abort = new AbortController();
  readonly #timer: ReturnType<typeof setTimeout>;

  constructor(socket: string, ids: string[]) {
    for (let i = 0; i < Math.ceil(ids.length / WAITS_PER_CHANNEL); i++) {
      this.#clients.push(new AgentClient(socket, { namespace: NAMESPACE, ownConnection: true }));
    }
    // The signal only ends the calls if the benchmark fails.
    this.#timer = setTimeout(
      () => this.#abort.abort(new Error("waiters: no answer within 5 min")),
      300_000,
    );
    this.done = Promise.all(ids.map(async (id, i) => {
      const client = this.#clients[Math.floor(i / WAITS_PER_CHANNEL)];
      const res = await client.wait(id, { signal: this.#abort.signal });
      this.answeredAt.push(wallMs());
      if (res.exitStatus !== 137) throw new Error(`waiters: wait ${id} answered ${res.exitStatus}`);
    })).then(() => {});
    this.done.catch(() => {});
  }

  get channels(): number {
    return this.#clients.length;
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#abort.abort();
    for (const c of this.#clients) c.close();
  }
}

interface Outcome {
  rssBefore: number;
  rssWaiting: number;
  rssAfter: number;
}

/** The bare grpc-js server holding the same calls. */
async function heldCalls(ctx: BenchContext, dir: string, ids: string[]) {
  const socket = join(dir, "held.sock");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", HELD_CALLS, socket],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const untrack = ctx.cleanup.child(child);
  const input = child.stdin.getWriter();
  const output = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  const line = async () => {
    for (;;) {
      const nl = buffer.indexOf("\n");
      if (nl >= 0) {
        const text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        return text;
      }
      const { value, done } = await output.read();
      if (done) throw new Error("held_calls ended");
      buffer += value;
    }
  };
  const ask = async (command: string) => {
    await input.write(new TextEncoder().encode(command + "\n"));
    return await line();
  };
  let waits: Waits | undefined;
  try {
    if ((await line()) !== "ready") throw new Error("held_calls did not start");
    await quiescent(child.pid, { quietMs: 300 });
    const rssBefore = rssBytes(child.pid);
    waits = new Waits(socket, ids);
    while (Number(await ask("count")) < ids.length) await sleep(50);
    await quiescent(child.pid, { quietMs: 500 });
    const rssWaiting = rssBytes(child.pid);
    const cue = wallMs();
    if ((await ask("answer")) !== "answered") throw new Error("held_calls did not answer");
    await waits.done;
    const answerMs = Math.max(...waits.answeredAt) - cue;
    await quiescent(child.pid, { quietMs: 300 });
    const outcome: Outcome & { answerMs: number } = {
      rssBefore,
      rssWaiting,
      rssAfter: rssBytes(child.pid),
      answerMs,
    };
    return outcome;
  } finally {
    waits?.close();
    output.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await input.close().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // Gone already.
    }
    await child.status;
    untrack();
  }
}

export async function waitersBenchmark(
  ctx: BenchContext,
  options: { burstLastExitToDurableMs?: number } = {},
): Promise<BenchResult> {
  const count = ctx.quick ? 1_000 : 10_000;
  await using dir = await tempDir(ctx, "waiters");
  const { fake, ids } = await startFake(dir.path, count);
  try {
    const load = loadAverage();
    ctx.log(`waiters: ${count} calls held by a bare grpc-js server`);
    const bare = await heldCalls(ctx, dir.path, ids);

    ctx.log(`waiters: agent syncing ${count} running sandboxes`);
    const agent = await startAgent(ctx, fake, join(dir.path, "agent"));
    let waits: Waits | undefined;
    try {
      const rssBefore = agent.rss();
      ctx.log(`waiters: ${count} blocked Wait calls`);
      waits = new Waits(agent.socket, ids);
      // Every call has reached the agent and is blocked once the agent has gone quiet.
      await quiescent(agent.pid, { quietMs: 500 });
      const rssWaiting = agent.rss();
      if (waits.answeredAt.length > 0) {
        throw new Error(`waiters: ${waits.answeredAt.length} waits answered before any exit`);
      }

      ctx.log(`waiters: ${count} exits`);
      const burst = fake.prepareExits(ids);
      const cpu0 = { agent: agent.cpuMs(), bench: cpuMs(Deno.pid) };
      const emit = await fake.emit(burst);
      await waits.done;
      const lastAnswer = Math.max(...waits.answeredAt);
      // Who was busy while the answers went out: the agent, or this process (the fake
      // containerd and the clients)?
      const cpuWhileAnswering = {
        agentMs: round(agent.cpuMs() - cpu0.agent),
        benchMs: round(cpuMs(Deno.pid) - cpu0.bench),
        wallMs: round(lastAnswer - emit.firstAt),
      };
      await quiescent(agent.pid, { quietMs: 300 });
      const rssAfter = agent.rss();
      const peak = peakRssBytes(agent.pid);
      const growthWaiting = rssWaiting - rssBefore;
      const growthAfter = rssAfter - rssBefore;
      const bareWaiting = bare.rssWaiting - bare.rssBefore;
      const bareAfter = bare.rssAfter - bare.rssBefore;
      const lastExitToLastAnswer = lastAnswer - emit.lastAt;
      const answers = percentiles(waits.answeredAt.map((t) => t - emit.firstAt));
      const mb = (bytes: number) => round(bytes / MB);
      return {
        params: { waiters: count, channels: waits.channels, deadline: "none" },
        figures: {
          agent: {
            rssBeforeMB: mb(rssBefore),
            rssWaitingMB: mb(rssWaiting),
            rssAfterMB: mb(rssAfter),
            peakRssMB: mb(peak),
            growthWaitingMB: mb(growthWaiting),
            growthAfterMB: mb(growthAfter),
            emitMs: round(emit.lastAt - emit.firstAt),
            lastExitToLastAnswerMs: round(lastExitToLastAnswer),
            firstExitToLastAnswerMs: round(lastAnswer - emit.firstAt),
            answerSinceFirstExitMs: Object.fromEntries(
              Object.entries(answers).map(([k, v]) => [k, round(v)]),
            ),
            cpuWhileAnswering,
          },
          bareGrpcServer: {
            rssBeforeMB: mb(bare.rssBefore),
            rssWaitingMB: mb(bare.rssWaiting),
            rssAfterMB: mb(bare.rssAfter),
            growthWaitingMB: mb(bareWaiting),
            growthAfterMB: mb(bareAfter),
            cueToLastAnswerMs: round(bare.answerMs),
          },
          burstWithoutWaitersLastExitToLastCommitMs: options.burstLastExitToDurableMs,
          load,
        },
        rows: [
          row("3 waiters", `RSS growth, ${count} Wait calls blocked`, growthWaiting / MB, "MB", {
            baseline: { what: "bare grpc-js server holding them", value: bareWaiting / MB },
            target: { text: "≤ 100 MB", met: growthWaiting <= 100 * MB },
            load,
          }),
          row("3 waiters", `RSS growth after the ${count} answers`, growthAfter / MB, "MB", {
            baseline: { what: "bare grpc-js server, answered", value: bareAfter / MB },
            target: { text: "≤ 100 MB", met: growthAfter <= 100 * MB },
            load,
          }),
          row("3 waiters", `last exit → last of ${count} answers`, lastExitToLastAnswer, "ms", {
            baseline: { what: "bare grpc-js server: cue → last answer", value: bare.answerMs },
            target: { text: "≤ 1 s", met: lastExitToLastAnswer <= 1_000 },
            load,
          }),
        ],
      };
    } finally {
      waits?.close();
      await agent.stop();
    }
  } finally {
    await fake.close();
  }
}
