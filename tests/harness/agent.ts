/**
 * The agent as a separate process, started exactly as deployed: `deno run` with the
 * agent's permission set from deno.json (the one `deno compile` bakes in), plus grants
 * for this test's private directory and sockets only.
 *
 * @module
 */
import { join } from "node:path";
import { agentPermissionFlags } from "../../scripts/permissions.ts";
import { AgentClient } from "../../src/cli/client.ts";
import { run, type RunResult } from "./process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

export interface AgentOptions {
  /** containerd socket the agent talks to. */
  containerdSocket: string;
  /** Directory for the agent's state and socket (reused across restarts). */
  dir: string;
  namespace: string;
  /** More `serve` flags. */
  args?: string[];
  /** Resolve before the agent is ready (for tests of start-up itself). */
  noWait?: boolean;
  /** More unix sockets (in `dir`) the agent may use, e.g. a --socket elsewhere. */
  sockets?: string[];
}

export type LogLine = Record<string, unknown> & { message?: string; level?: string };

/** `deno run` arguments that run the CLI under the agent's permissions. */
export function agentDenoArgs(
  options: { dir: string; containerdSocket?: string; sockets?: string[] },
): string[] {
  const sockets = [join(options.dir, "agent.sock"), ...(options.sockets ?? [])];
  if (options.containerdSocket) sockets.push(options.containerdSocket);
  return ["run", ...agentPermissionFlags({ paths: [options.dir, ...sockets], sockets }), MAIN];
}

/**
 * `serve` arguments for an agent whose state and socket live in `dir` (state/, agent.sock),
 * with JSON logs; `extra` flags come last and win.
 */
export function agentServeArgs(
  options: { dir: string; containerdSocket: string; namespace: string },
  extra: string[] = [],
): string[] {
  return [
    "serve",
    "--address",
    options.containerdSocket,
    "--namespace",
    options.namespace,
    "--state",
    join(options.dir, "state"),
    "--socket",
    join(options.dir, "agent.sock"),
    "--log-format",
    "json",
    ...extra,
  ];
}

export class AgentProcess {
  readonly socket: string;
  readonly stateDir: string;
  readonly logs: LogLine[] = [];
  readonly #process: Deno.ChildProcess;
  readonly #listeners = new Set<() => void>();
  readonly #stderrDone: Promise<void>;
  readonly #options: AgentOptions;

  private constructor(options: AgentOptions) {
    this.#options = options;
    this.socket = join(options.dir, "agent.sock");
    this.stateDir = join(options.dir, "state");
    this.#process = new Deno.Command(Deno.execPath(), {
      args: [
        ...agentDenoArgs(options),
        ...agentServeArgs(options, ["--log-level", "debug", ...(options.args ?? [])]),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#stderrDone = this.#readLogs();
  }

  /** Starts the agent and (unless noWait) waits for its "serving on" line. */
  static async start(options: AgentOptions): Promise<AgentProcess> {
    const agent = new AgentProcess(options);
    if (!options.noWait) {
      await agent.waitForLog((l) => l.message?.startsWith("serving on") ?? false, 20_000);
    }
    return agent;
  }

  get pid(): number {
    return this.#process.pid;
  }

  async #readLogs(): Promise<void> {
    let buffer = "";
    for await (const chunk of this.#process.stderr.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.trim()) continue;
        try {
          this.logs.push(JSON.parse(line));
        } catch {
          this.logs.push({ message: line, level: "RAW" });
        }
        for (const l of [...this.#listeners]) l();
      }
    }
    for (const l of [...this.#listeners]) l();
  }

  /** Resolves with the first log line matching `predicate` (already seen or future). */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.logs.find(predicate);
        if (found) {
          cleanup();
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(
          new Error(
            `agent log line not seen within ${timeoutMs} ms; log:\n${this.logText()}`,
          ),
        );
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.#listeners.delete(check);
      };
      this.#listeners.add(check);
      check();
    });
  }

  logText(): string {
    return this.logs.map((l) => JSON.stringify(l)).join("\n");
  }

  /** Signals the agent and waits for it to exit; returns its exit status. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.#process.kill(signal);
    } catch {
      // Already exited.
    }
    const status = await this.#process.status;
    await this.#stderrDone;
    return status;
  }

  /** The process's exit status, once it exits by itself. */
  get status(): Promise<Deno.CommandStatus> {
    return this.#process.status;
  }

  /** Runs a client command of the CLI against this agent (its socket and namespace). */
  cli(command: string, ...args: string[]): Promise<RunResult> {
    return run(Deno.execPath(), [
      ...agentDenoArgs(this.#options),
      command,
      ...args,
      "--socket",
      this.socket,
      "--namespace",
      this.#options.namespace,
    ], { allowFailure: true });
  }

  /** An in-process client of the agent's socket. */
  client(): AgentClient {
    return new AgentClient(this.socket, { namespace: this.#options.namespace });
  }
}
