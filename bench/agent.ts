/**
 * The agent under benchmark, as a user starts it: `deno task podsandboxd serve` with the
 * benchmark's private paths as arguments (tests/harness/agent.ts builds the same
 * command), JSON logs at the default level (info). `pid` is the agent's own process.
 *
 * What the benchmarks read from it: when its socket serves, when each exit was
 * committed (its "exited with status" log line is written after the KV commit), its
 * RSS and CPU time, and with `traceExits` the per-exit stage timestamps it logs when it
 * stops (src/trace/exit_trace.ts).
 *
 * @module
 */
import { join } from "node:path";
import { AgentClient } from "../src/cli/client.ts";
import { agentServeArgs, cliArgs, cliPid, killCli } from "../tests/harness/agent.ts";
import type { Cleanups } from "./context.ts";
import { cpuMs, rssBytes, wallMs } from "./proc.ts";
import { EXIT_TRACE_ENV, type ExitTraceLine } from "../src/trace/exit_trace.ts";

export interface BenchAgentOptions {
  containerdSocket: string;
  /** Directory for the agent's state and socket. */
  dir: string;
  namespace: string;
  /** More `serve` flags. */
  args?: string[];
  /** Extra flags for the agent's `deno run` (e.g. --cpu-prof), through the launcher. */
  denoFlags?: string[];
  /** Told when the agent ends other than by the benchmark's SIGTERM (a crash). */
  onAbnormalExit?: (what: string) => void;
  /** Registers the agent to be killed if the run is interrupted. */
  cleanup?: Cleanups;
  /** Run with PODSANDBOXD_EXIT_TRACE=1: `traces` holds each exit's stages once it stopped. */
  traceExits?: boolean;
}

interface LogLine {
  "@timestamp"?: string;
  message?: string;
  level?: string;
  properties?: { id?: string } & Partial<ExitTraceLine>;
}

const EXITED = / exited with status /;
const SERVING = /^serving on /;
const TRACE = /^exit trace /;

export class BenchAgent {
  readonly socket: string;
  readonly stateDir: string;
  /** Wall-clock ms when the process was spawned. */
  readonly spawnedAt: number;
  /** Wall-clock ms when each "exited with status" line arrived, in order. */
  readonly exitLines: number[] = [];
  /** Sandbox id → the agent's own timestamp (ms) of its "exited with status" line. */
  readonly committedAt = new Map<string, number>();
  /** Wall-clock ms of the "serving on" line. */
  servingAt?: number;
  /** Sandbox id → its exit's trace (with `traceExits`, once the agent has stopped). */
  readonly traces = new Map<string, ExitTraceLine>();
  /** The last log lines, for error messages. */
  readonly #tail: string[] = [];
  readonly #process: Deno.ChildProcess;
  readonly #listeners = new Set<() => void>();
  readonly #stderrDone: Promise<void>;
  readonly #namespace: string;
  readonly #onAbnormalExit?: (what: string) => void;
  #stopping = false;
  #pid?: number;
  readonly #untrack: () => void;

  private constructor(options: BenchAgentOptions) {
    this.#onAbnormalExit = options.onAbnormalExit;
    this.socket = join(options.dir, "agent.sock");
    this.stateDir = join(options.dir, "state");
    this.#namespace = options.namespace;
    this.spawnedAt = wallMs();
    this.#process = new Deno.Command(Deno.execPath(), {
      args: cliArgs(agentServeArgs(options, options.args), options.denoFlags),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: options.traceExits ? { [EXIT_TRACE_ENV]: "1" } : undefined,
    }).spawn();
    this.#stderrDone = this.#readLogs();
    this.#untrack = options.cleanup?.add(() => killCli(this.#process.pid)) ?? (() => {});
    this.#process.status.then((status) => {
      if (this.#stopping && status.success) return;
      this.#onAbnormalExit?.(
        `agent (pid ${this.#pid ?? this.#process.pid}) exited ${
          status.signal ?? `with code ${status.code}`
        }` +
          (this.#stopping ? " when asked to stop" : " by itself") +
          `; last log lines:\n${this.logTail().split("\n").slice(-5).join("\n")}`,
      );
    });
  }

  /** Starts the agent; unless `noWait`, resolves once it serves on its socket. */
  static async start(
    options: BenchAgentOptions & { noWait?: boolean; timeoutMs?: number },
  ): Promise<BenchAgent> {
    const agent = new BenchAgent(options);
    if (!options.noWait) {
      try {
        await agent.until(() => agent.servingAt !== undefined, options.timeoutMs ?? 120_000);
        agent.#pid = await cliPid(agent.#process.pid);
      } catch (err) {
        await agent.stop("SIGKILL");
        throw err;
      }
    }
    return agent;
  }

  /** The agent's own process (under the task and the launcher), once it serves. */
  get pid(): number {
    if (this.#pid === undefined) throw new Error("the agent's pid is known once it serves");
    return this.#pid;
  }

  rss(): number {
    return rssBytes(this.pid);
  }

  cpuMs(): number {
    return cpuMs(this.pid);
  }

  async #readLogs(): Promise<void> {
    let buffer = "";
    for await (const chunk of this.#process.stderr.pipeThrough(new TextDecoderStream())) {
      const at = wallMs();
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!text.trim()) continue;
        this.#tail.push(text);
        if (this.#tail.length > 50) this.#tail.shift();
        let line: LogLine;
        try {
          line = JSON.parse(text);
        } catch {
          continue;
        }
        const message = line.message ?? "";
        if (EXITED.test(message)) {
          this.exitLines.push(at);
          const id = line.properties?.id;
          if (id && line["@timestamp"]) this.committedAt.set(id, Date.parse(line["@timestamp"]));
        } else if (SERVING.test(message)) this.servingAt = at;
        else if (TRACE.test(message) && line.properties?.key) {
          const trace = line.properties as ExitTraceLine;
          this.traces.set(trace.key.slice(trace.key.indexOf("/") + 1), trace);
        }
      }
      for (const l of [...this.#listeners]) l();
    }
    for (const l of [...this.#listeners]) l();
  }

  /** Resolves once `condition` holds (checked whenever log lines arrive). */
  until(condition: () => boolean, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (condition()) {
          cleanup();
          resolve();
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(`agent: condition not met within ${timeoutMs} ms; log:\n${this.logTail()}`),
        );
      }, timeoutMs);
      const exited = this.#process.status.then((s) => {
        cleanup();
        reject(new Error(`agent exited (${s.code}) early; log:\n${this.logTail()}`));
      });
      exited.catch(() => {});
      const cleanup = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  logTail(): string {
    return this.#tail.join("\n");
  }

  /** An in-process client of the agent's socket. */
  client(): AgentClient {
    return new AgentClient(this.socket, { namespace: this.#namespace });
  }

  /** Signals the agent and waits for it to exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    this.#stopping = true;
    try {
      if (signal === "SIGKILL") killCli(this.#process.pid);
      else this.#process.kill(signal);
    } catch {
      // Already exited.
    }
    const status = await this.#process.status;
    await this.#stderrDone;
    this.#untrack();
    return status;
  }
}
