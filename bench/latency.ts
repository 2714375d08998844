/**
 * Benchmark 1, exit → answer latency on a real containerd: N sandbox containers (busybox
 * `sleep`, labelled like CRI sandboxes), one blocked `Wait` each on the agent's socket,
 * all SIGKILLed in one burst (the signal sent straight to each init pid, in one loop).
 * Per sandbox: when the waiter's answer arrived minus containerd's `exited_at`.
 *
 * Beside it, watching the same burst in this process:
 * - the floor: a raw subscriber of containerd's TaskExit events, no store;
 * - a poller that lists tasks and sleeps 1 s between listings (the kubelet's generic
 *   PLEG): when it first sees the task STOPPED, minus `exited_at`. A poller's latency
 *   depends on its phase against the burst, so ten of them run, their first listings
 *   0.1 s apart, and every (sandbox, poller) pair is a sample.
 * Then again with --reap=always (the agent deletes the task before answering), on fresh
 * sandboxes in another namespace.
 *
 * @module
 */
import { join } from "node:path";
import { GrpcContainerdClient } from "../src/containerd/grpc_client.ts";
import { NotFoundError } from "../src/errors.ts";
import { instantToMillis } from "../src/time.ts";
import { PrivateContainerd } from "../tests/harness/containerd.ts";
import { Containers, importImages, uniqueId } from "../tests/harness/containers.ts";
import { TaskEvents } from "../tests/harness/task_events.ts";
import { BenchAgent } from "./agent.ts";
import { CONTROLLER_VERSION, criControllerRound } from "./cri_controller.ts";
import { type BenchContext, type BenchResult, sleep, tempDir } from "./context.ts";
import { cpuMs, loadAverage, quiescent, runDelayMs, wallMs } from "./proc.ts";
import { type Row, row } from "./report.ts";
import { type Percentiles, percentiles, round } from "./stats.ts";

const RUN_FOREVER = ["sleep", "2147483647"];
/** Containers created at once with ctr. */
const CREATE_PARALLELISM = 8;
/** Pollers, their phases spread evenly over the 1 s period. */
const POLLERS = 10;
/** Time between the single exits killed before the burst. */
const SPACING_MS = 100;

type Arrivals = Map<string, { at: number; exitedAt: number }>;

function latency(arrival: { at: number; exitedAt: number }): number {
  return arrival.at - arrival.exitedAt;
}

/** Lists tasks, sleeps 1 s, lists again (the kubelet's generic PLEG relist). */
class TaskPoller {
  readonly arrivals: Arrivals = new Map();
  readonly #client: GrpcContainerdClient;
  readonly #abort = new AbortController();
  readonly #done: Promise<void>;

  constructor(address: string, namespace: string, phaseMs: number, periodMs = 1_000) {
    this.#client = new GrpcContainerdClient({ address });
    this.#done = this.#run(namespace, phaseMs, periodMs);
  }

  async #run(namespace: string, phaseMs: number, periodMs: number): Promise<void> {
    await sleep(phaseMs);
    {
      while (!this.#abort.signal.aborted) {
        try {
          const tasks = await this.#client.listTasks(namespace, { signal: this.#abort.signal });
          const at = wallMs();
          for (const t of tasks) {
            if (t.status === "stopped" && t.exitedAt && !this.arrivals.has(t.containerId)) {
              this.arrivals.set(t.containerId, { at, exitedAt: instantToMillis(t.exitedAt) });
            }
          }
          await sleep(periodMs);
        } catch {
          if (!this.#abort.signal.aborted) await sleep(periodMs);
        }
      }
    }
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#done;
    this.#client.close();
  }
}

async function until(what: string, condition: () => boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`latency: timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function createSandboxes(c: Containers, count: number): Promise<string[]> {
  const ids = Array.from({ length: count }, () => uniqueId("bench"));
  let next = 0;
  await Promise.all(Array.from({ length: CREATE_PARALLELISM }, async () => {
    while (next < ids.length) await c.run(ids[next++], RUN_FOREVER);
  }));
  return ids;
}

interface Round {
  /** Exits one at a time (one every SPACING_MS), before the burst: no burst, same agent. */
  single?: { agent: Percentiles; floor: Percentiles; commitMinusFloor: Percentiles };
  agent: Percentiles;
  floor: Percentiles;
  /** Per sandbox: the agent's answer minus the raw subscriber's arrival. */
  agentMinusFloor: Percentiles;
  /** Per sandbox: the agent's commit (its log line's time, ms) minus the raw arrival. */
  commitMinusFloor: Percentiles;
  /** Per sandbox: the answer's arrival minus the agent's commit. */
  answerMinusCommit: Percentiles;
  poller?: Percentiles;
  /** Exit → TaskDelete event seen by the raw subscriber (when someone deleted the tasks). */
  deleted?: Percentiles;
  /** Tasks deleted without a TaskDelete event (containerd 2.1), left out of `deleted`. */
  deletesWithoutEvent: number;
  /** CPU time of the agent and of this process from the kill to the last answer; that wall time. */
  agentCpu: { cpuMs: number; benchCpuMs: number; agentRunQueueMs: number; wallMs: number };
  load: number;
}

/** One burst: N sandboxes, N blocked waits, one SIGKILL each, answers/floor/poller timed. */
async function burstRound(
  ctx: BenchContext,
  containerd: PrivateContainerd,
  options: {
    namespace: string;
    count: number;
    /** Sandboxes killed one at a time before the burst. */
    single: number;
    dir: string;
    reapArgs: string[];
    poll: boolean;
  },
): Promise<Round> {
  const { namespace, count } = options;
  await importImages(containerd, namespace);
  const c = new Containers(containerd, namespace);
  let agent: BenchAgent | undefined;
  let floor: TaskEvents | undefined;
  let pollers: TaskPoller[] | undefined;
  const client = new GrpcContainerdClient({ address: containerd.socket });
  try {
    ctx.log(`latency: creating ${count + options.single} sandboxes in ${namespace}`);
    const all = await createSandboxes(c, count + options.single);
    const singles = all.slice(0, options.single);
    const ids = all.slice(options.single);
    const tasks = new Map((await client.listTasks(namespace)).map((t) => [t.containerId, t]));
    const pidOf = (id: string) => {
      const task = tasks.get(id);
      if (task?.status !== "running") throw new Error(`latency: ${id} is not running`);
      return task.pid;
    };
    const pids = ids.map(pidOf);

    agent = await BenchAgent.start({
      containerdSocket: containerd.socket,
      dir: options.dir,
      namespace,
      args: options.reapArgs,
      denoFlags: ctx.agentDenoFlags,
      onAbnormalExit: ctx.note,
      cleanup: ctx.cleanup,
    });
    floor = await TaskEvents.start(containerd.socket, namespace);
    if (options.poll) {
      pollers = Array.from(
        { length: POLLERS },
        (_, i) => new TaskPoller(containerd.socket, namespace, i * 1_000 / POLLERS),
      );
    }

    const waiter = agent.client();
    const answers: Arrivals = new Map();
    const waits = all.map(async (id) => {
      const res = await waiter.wait(id, { timeoutMs: 120_000 });
      const at = wallMs();
      if (res.exitStatus !== 137 || !res.exitedAt) {
        throw new Error(`latency: wait ${id} answered ${JSON.stringify(res)}`);
      }
      answers.set(id, { at, exitedAt: instantToMillis(res.exitedAt) });
    });
    // Every Wait has reached the agent and is blocked once the agent has gone quiet.
    await quiescent(agent.pid, { quietMs: 500 });
    if (answers.size > 0) throw new Error("latency: waits answered before the kill");

    // Every poller is listing by now (its phase is under 1 s).
    if (pollers) await sleep(1_000);
    let single: Round["single"];
    if (singles.length > 0) {
      ctx.log(`latency: SIGKILL to ${singles.length} sandboxes, one every ${SPACING_MS} ms`);
      for (const id of singles) {
        Deno.kill(pidOf(id), "SIGKILL");
        await sleep(SPACING_MS);
      }
      await until("the single exits' answers", () => singles.every((id) => answers.has(id)));
      await until(
        "the single exits' events",
        () => singles.every((id) => floor!.exitArrivals.has(id)),
      );
      single = {
        agent: percentiles(singles.map((id) => latency(answers.get(id)!))),
        floor: percentiles(singles.map((id) => latency(floor!.exitArrivals.get(id)!))),
        commitMinusFloor: percentiles(
          singles.map((id) => agent!.committedAt.get(id)! - floor!.exitArrivals.get(id)!.at),
        ),
      };
    }
    const load = loadAverage();
    ctx.log(
      `latency: SIGKILL to ${count} sandboxes (${options.reapArgs.join(" ") || "reap never"})`,
    );
    const cpu0 = {
      agent: agent.cpuMs(),
      bench: cpuMs(Deno.pid),
      agentRunDelay: runDelayMs(agent.pid),
    };
    const killedAt = wallMs();
    for (const pid of pids) Deno.kill(pid, "SIGKILL");
    await Promise.all(waits);
    // How much CPU the agent needed for the burst, against the time it took.
    const agentCpu = {
      cpuMs: round(agent.cpuMs() - cpu0.agent),
      benchCpuMs: round(cpuMs(Deno.pid) - cpu0.bench),
      agentRunQueueMs: round(runDelayMs(agent.pid) - cpu0.agentRunDelay),
      wallMs: round(Math.max(...ids.map((id) => answers.get(id)!.at)) - killedAt),
    };
    await until(
      "the floor subscriber's exits",
      () => ids.every((id) => floor!.exitArrivals.has(id)),
    );
    if (pollers) {
      await until(
        "the pollers' exits",
        () => pollers!.every((p) => ids.every((id) => p.arrivals.has(id))),
      );
    }
    let deletesWithoutEvent = 0;
    if (options.reapArgs.length > 0) {
      // containerd 2.1 publishes no TaskDelete for some deletes (see TaskEvents.taskGone):
      // a task that is gone without one is counted, not waited for.
      const gone = await Promise.all(ids.map((id) =>
        floor!.taskGone(
          id,
          () =>
            client.getTask(options.namespace, id).then(
              () => false,
              (err) => err instanceof NotFoundError,
            ),
          60_000,
        )
      ));
      deletesWithoutEvent = gone.filter((g) => !g.event).length;
    }
    waiter.close();
    const of = (arrivals: Arrivals) => ids.map((id) => latency(arrivals.get(id)!));
    return {
      single,
      agent: percentiles(of(answers)),
      floor: percentiles(of(floor.exitArrivals)),
      agentMinusFloor: percentiles(
        ids.map((id) => answers.get(id)!.at - floor!.exitArrivals.get(id)!.at),
      ),
      commitMinusFloor: percentiles(
        ids.map((id) => agent!.committedAt.get(id)! - floor!.exitArrivals.get(id)!.at),
      ),
      answerMinusCommit: percentiles(
        ids.map((id) => answers.get(id)!.at - agent!.committedAt.get(id)!),
      ),
      poller: pollers && percentiles(pollers.flatMap((p) => of(p.arrivals))),
      deleted: floor.deleteArrivals.size > 0
        ? percentiles(
          ids.filter((id) => floor!.deleteArrivals.has(id))
            .map((id) => latency(floor!.deleteArrivals.get(id)!)),
        )
        : undefined,
      deletesWithoutEvent,
      agentCpu,
      load,
    };
  } finally {
    await Promise.all(pollers?.map((p) => p.close()) ?? []);
    await floor?.close();
    await agent?.stop();
    client.close();
    c.close();
  }
}

const KEYS = ["p50", "p95", "p99", "max"] as const;

function rounded(p: Percentiles | undefined) {
  return p && Object.fromEntries(Object.entries(p).map(([k, v]) => [k, round(v)]));
}

export async function latencyBenchmark(ctx: BenchContext): Promise<BenchResult> {
  const count = ctx.quick ? 10 : 100;
  const single = ctx.quick ? 5 : 20;
  await using dir = await tempDir(ctx, "latency");
  ctx.log("latency: starting a private containerd");
  const containerd = await PrivateContainerd.start();
  const untrack = ctx.cleanup.add(() => containerd.stop());
  try {
    const never = await burstRound(ctx, containerd, {
      namespace: "psd-bench",
      count,
      single,
      dir: join(dir.path, "never"),
      reapArgs: [],
      poll: true,
    });
    const always = await burstRound(ctx, containerd, {
      namespace: "psd-bench-reap",
      count,
      single,
      dir: join(dir.path, "always"),
      // --reap=always on the CRI's label is refused unless the operator says the agent owns them.
      reapArgs: ["--reap", "always", "--reap-cri-sandboxes"],
      poll: false,
    });

    // On 2.1, containerd's own pod-sandbox controller answers the same Waits: the baseline.
    const controller = containerd.version === CONTROLLER_VERSION
      ? await criControllerRound(ctx, {
        count,
        single,
        spacingMs: SPACING_MS,
        dir: dir.path,
      })
      : undefined;

    const rows: Row[] = [];
    for (const k of KEYS) {
      rows.push(row("1 latency", `exit → answer ${k}, agent (reap=never)`, never.agent[k], "ms", {
        baseline: { what: "raw subscriber, no store", value: never.floor[k] },
        load: never.load,
      }));
    }
    const diff = never.agent.p99 - never.floor.p99;
    rows.push(row("1 latency", "agent p99 − floor p99 (reap=never)", diff, "ms", {
      baseline: { what: "floor p99", value: never.floor.p99 },
      target: { text: "≤ 10 ms", met: diff <= 10 },
      load: never.load,
    }));
    rows.push(
      row("1 latency", "per sandbox: answer − raw arrival, p99", never.agentMinusFloor.p99, "ms", {
        load: never.load,
      }),
    );
    const poller = never.poller!;
    const belowPoller = poller.p50 / never.agent.p50;
    rows.push(row("1 latency", "poller p50 ÷ agent p50 (reap=never)", belowPoller, "×", {
      target: { text: "≥ 50×", met: belowPoller >= 50 },
      load: never.load,
    }));
    for (const k of KEYS) {
      rows.push(row("1 latency", `exit → seen ${k}, 1 s task-list poller`, poller[k], "ms", {
        baseline: { what: "raw subscriber, no store", value: never.floor[k] },
        load: never.load,
      }));
    }
    for (const k of KEYS) {
      rows.push(
        row("1 latency", `exit → answer ${k}, agent (reap=always)`, always.agent[k], "ms", {
          baseline: { what: "raw subscriber, no store", value: always.floor[k] },
          load: always.load,
        }),
      );
    }
    for (const [policy, round] of [["never", never], ["always", always]] as const) {
      if (!round.single) continue;
      for (const k of ["p50", "p99"] as const) {
        rows.push(row(
          "1 latency",
          `single exits (one per ${SPACING_MS} ms): exit → answer ${k}, reap=${policy}`,
          round.single.agent[k],
          "ms",
          {
            baseline: { what: "raw subscriber, no store", value: round.single.floor[k] },
            load: round.load,
          },
        ));
      }
    }
    if (always.deleted) {
      for (const k of ["p50", "p99"] as const) {
        rows.push(
          row(
            "1 latency",
            `exit → TaskDelete seen ${k} (reap=always${
              always.deletesWithoutEvent
                ? `; ${always.deletesWithoutEvent} of ${count} deletes published none`
                : ""
            })`,
            always.deleted[k],
            "ms",
            {
              baseline: { what: "raw subscriber, no store", value: always.floor[k] },
              load: always.load,
            },
          ),
        );
      }
    }
    if (controller) {
      const phases = [
        [`single exits (one per ${SPACING_MS} ms)`, controller.single],
        [`${count} killed at once`, controller.burst],
      ] as const;
      for (const [label, phase] of phases) {
        for (const k of ["p50", "p99"] as const) {
          rows.push(
            row("1 latency", `CRI pods, ${label}: exit → Wait answer ${k}`, phase.agent[k], "ms", {
              baseline: {
                what: `containerd ${CONTROLLER_VERSION}'s own controller`,
                value: phase.controller[k],
              },
              load: phase.load,
            }),
          );
        }
        for (const k of ["p50", "p99"] as const) {
          rows.push(row(
            "1 latency",
            `CRI pods, ${label}: agent − containerd's controller, per pod ${k}`,
            phase.agentMinusController[k],
            "ms",
            { load: phase.load },
          ));
        }
      }
    }
    return {
      params: {
        containerdVersion: containerd.version,
        sandboxes: count,
        signal: "SIGKILL, to every init pid in one loop",
        containerd: "private, runc, busybox sleep",
        pollers: POLLERS,
        singleExits: single,
        singleSpacingMs: SPACING_MS,
      },
      figures: {
        reapNever: {
          agent: rounded(never.agent),
          floor: rounded(never.floor),
          agentMinusFloorPerSandbox: rounded(never.agentMinusFloor),
          single: never.single && {
            agent: rounded(never.single.agent),
            floor: rounded(never.single.floor),
            commitMinusFloorPerSandbox: rounded(never.single.commitMinusFloor),
          },
          commitMinusFloorPerSandbox: rounded(never.commitMinusFloor),
          answerMinusCommitPerSandbox: rounded(never.answerMinusCommit),
          poller: rounded(never.poller),
          agentCpu: never.agentCpu,
          load: never.load,
        },
        reapAlways: {
          agent: rounded(always.agent),
          floor: rounded(always.floor),
          agentMinusFloorPerSandbox: rounded(always.agentMinusFloor),
          single: always.single && {
            agent: rounded(always.single.agent),
            floor: rounded(always.single.floor),
            commitMinusFloorPerSandbox: rounded(always.single.commitMinusFloor),
          },
          commitMinusFloorPerSandbox: rounded(always.commitMinusFloor),
          answerMinusCommitPerSandbox: rounded(always.answerMinusCommit),
          taskDeleted: rounded(always.deleted),
          taskDeletesWithoutEvent: always.deletesWithoutEvent,
          agentCpu: always.agentCpu,
          load: always.load,
        },
        criController: controller && Object.fromEntries(
          (["single", "burst"] as const).map((name) => {
            const p = controller[name];
            return [name, {
              pods: p.pods,
              agent: rounded(p.agent),
              controller: rounded(p.controller),
              agentMinusControllerPerPod: rounded(p.agentMinusController),
              load: p.load,
            }];
          }),
        ),
      },
      rows,
    };
  } finally {
    ctx.log("latency: stopping containerd");
    untrack();
    await containerd.stop();
  }
}
