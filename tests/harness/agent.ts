/**
 * The agent as a separate process, started as a user starts it: `deno task podsandboxd
 * serve` with the test's private paths as arguments — the launcher grants exactly what
 * they name, nothing test-only. The process chain is deno task → launcher → the CLI
 * (main.ts); `pid` is the CLI's, signals go to the top and are forwarded down, SIGKILL
 * (a crash) goes to the CLI itself.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { AgentClient } from "../../src/cli/client.ts";
import { alive, descendantWithCmdline, eventually, run, type RunResult } from "./process.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** The CLI's entry point, as it appears on the agent's command line. */
export const MAIN = `${ROOT}main.ts`;

export interface AgentOptions {
  /** containerd socket the agent talks to. */
  containerdSocket: string;
  /** containerd's state directory; default: the private containerd's, beside its socket. */
  containerdState?: string;
  /** Directory for the agent's state and socket (reused across restarts). */
  dir: string;
  namespace: string;
  /** More `serve` flags. */
  args?: string[];
  /** Resolve before the agent is ready (for tests of start-up itself). */
  noWait?: boolean;
  /**
   * A layout of its own: the whole `serve` command line (then `dir` is only where
   * nothing of the agent's lives, and `containerdSocket` unused) and the socket it
   * serves on.
   */
  layout?: { args: string[]; socket: string; env?: Record<string, string> };
  /** A command the task runs under (e.g. unshare for a mount namespace). */
  prefix?: string[];
}

export type LogLine = Record<string, unknown> & { message?: string; level?: string };

/**
 * `deno` arguments running the CLI as the README says: `deno task podsandboxd ARGS`
 * (`--quiet` only drops the task runner's echo of the command). `denoFlags` go to the
 * agent's own `deno run` (the launcher's --deno-flag).
 */
export function cliArgs(args: string[], denoFlags: string[] = []): string[] {
  return [
    "task",
    "--quiet",
    "--config",
    `${ROOT}deno.json`,
    "podsandboxd",
    ...denoFlags.map((f) => `--deno-flag=${f}`),
    ...args,
  ];
}

/** Runs one CLI command as a user would; never throws on a non-zero exit. */
export function runCli(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; prefix?: string[] } = {},
): Promise<RunResult> {
  const [command, ...prefix] = [...(options.prefix ?? []), Deno.execPath()];
  return run(command, [...prefix, ...cliArgs(args)], { allowFailure: true, ...options });
}

/** The pid of the CLI process (main.ts) under a `deno task podsandboxd` process. */
export function cliPid(taskPid: number, timeoutMs = 20_000): Promise<number> {
  return eventually("the CLI process under deno task", () => {
    if (!alive(taskPid)) throw new Error(`deno task (pid ${taskPid}) exited`);
    return descendantWithCmdline(taskPid, MAIN);
  }, { timeoutMs, intervalMs: 10 });
}

/**
 * SIGKILLs the CLI under a `deno task podsandboxd` process (the launcher and the task
 * then exit with its status, 137), or the task itself if the CLI is not running yet.
 */
export function killCli(taskPid: number): void {
  try {
    Deno.kill(descendantWithCmdline(taskPid, MAIN) ?? taskPid, "SIGKILL");
  } catch {
    // Gone already.
  }
}

/**
 * `serve` arguments for an agent whose state and socket live in `dir` (state/, agent.sock),
 * with JSON logs; `extra` flags come last and win.
 */
export function agentServeArgs(
  options: { dir: string; containerdSocket: string; namespace: string; containerdState?: string },
  extra: string[] = [],
): string[] {
  return [
    "serve",
    "--address",
    options.containerdSocket,
    // A private containerd (tests/harness/containerd.ts) keeps DIR/c.sock and DIR/state.
    "--containerd-state",
    options.containerdState ?? join(dirname(options.containerdSocket), "state"),
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
  #pid?: number;

  private constructor(options: AgentOptions) {
    this.#options = options;
    this.socket = options.layout?.socket ?? join(options.dir, "agent.sock");
    this.stateDir = join(options.dir, "state");
    const args = cliArgs(
      options.layout?.args ??
        agentServeArgs(options, ["--log-level", "debug", ...(options.args ?? [])]),
    );
    const [command, ...prefix] = [...(options.prefix ?? []), Deno.execPath()];
    this.#process = new Deno.Command(command, {
      args: [...prefix, ...args],
      env: options.layout?.env,
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
      try {
        await agent.waitForLog((l) => l.message?.startsWith("serving on") ?? false, 20_000);
        agent.#pid = await cliPid(agent.#process.pid);
      } catch (err) {
        // The caller gets no agent to stop: SIGTERM goes down the task and the launcher.
        await agent.stop().catch(() => {});
        throw err;
      }
    }
    return agent;
  }

  /** The agent's own process (the CLI under the launcher), once it is serving. */
  get pid(): number {
    if (this.#pid === undefined) throw new Error("the agent's pid is known once it serves");
    return this.#pid;
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

  /**
   * Signals the agent and waits for it to exit; returns the exit status the task passes
   * through. SIGTERM/SIGINT/SIGHUP go through the task and the launcher, which forward
   * them; SIGKILL (a crash) cannot be forwarded and goes to the agent's own process.
   */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      if (signal === "SIGKILL") killCli(this.#process.pid);
      else this.#process.kill(signal);
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
    return runCli([
      command,
      ...args,
      "--socket",
      this.socket,
      "--namespace",
      this.#options.namespace,
    ]);
  }

  /** An in-process client of the agent's socket (`ownConnection`: not shared). */
  client(options: { ownConnection?: boolean } = {}): AgentClient {
    return new AgentClient(this.socket, { namespace: this.#options.namespace, ...options });
  }
}
