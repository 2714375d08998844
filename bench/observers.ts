/**
 * The latency benchmark's observers (bench/baseline/observer.ts), each run as a process
 * of its own, and what they saw: per sandbox, when (wall-clock ms) the raw subscriber got
 * its TaskExit and TaskDelete, when each poller first listed it stopped, and when the
 * agent's answer to its Wait arrived.
 *
 * @module
 */
import type { Cleanups } from "./context.ts";

const OBSERVER = new URL("./baseline/observer.ts", import.meta.url).pathname;

/** Sandbox id → when it was seen and containerd's exit time (both wall-clock ms). */
export type Arrivals = Map<string, { at: number; exitedAt: number }>;

interface Line {
  ready?: boolean;
  kind?: "exit" | "delete" | "seen" | "answer" | "error";
  id?: string;
  at?: number;
  exitedAt?: number;
  poller?: number;
  status?: number;
  error?: string;
}

export class ObserverProcess {
  /** The raw subscriber's TaskExits (mode events). */
  readonly exits: Arrivals = new Map();
  /** The raw subscriber's TaskDeletes (mode events). */
  readonly deletes: Arrivals = new Map();
  /** Poller → what it saw stopped (mode poll). */
  readonly seen = new Map<number, Arrivals>();
  /** The agent's answers (mode wait). */
  readonly answers: Arrivals = new Map();
  /** Sandbox id → its Wait's exit status (mode wait). */
  readonly statuses = new Map<string, number>();
  /** Waits that failed: "id: error" (mode wait). */
  readonly errors: string[] = [];
  /** The observer's process. */
  readonly pid: number;
  readonly #process: Deno.ChildProcess;
  readonly #stopSignal: Deno.Signal;
  readonly #reading: Promise<void>;
  readonly #ready = Promise.withResolvers<void>();
  readonly #untrack: () => void;

  private constructor(args: string[], cleanup: Cleanups, stopSignal: Deno.Signal = "SIGTERM") {
    this.#stopSignal = stopSignal;
    this.#process = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", OBSERVER, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.pid = this.#process.pid;
    this.#untrack = cleanup.child(this.#process);
    this.#reading = this.#read();
    this.#process.status.then((s) =>
      this.#ready.reject(new Error(`observer ${args[0]} exited (${s.code}) before it was ready`))
    );
    this.#ready.promise.catch(() => {});
  }

  /** The raw subscriber of `namespace`'s task events, once its subscription is live. */
  static events(socket: string, namespace: string, cleanup: Cleanups): Promise<ObserverProcess> {
    return new ObserverProcess(["events", socket, namespace], cleanup).#started();
  }

  /** `count` 1 s task-list pollers, once each has listed. */
  static pollers(
    socket: string,
    namespace: string,
    count: number,
    cleanup: Cleanups,
  ): Promise<ObserverProcess> {
    return new ObserverProcess(["poll", socket, namespace, String(count)], cleanup).#started();
  }

  /**
   * One blocked Wait per id on the agent's socket, `perConnection` to a connection, once
   * every Wait is sent. Closed with SIGKILL (see bench/baseline/observer.ts).
   */
  static waits(
    agentSocket: string,
    namespace: string,
    ids: string[],
    perConnection: number,
    cleanup: Cleanups,
  ): Promise<ObserverProcess> {
    const args = ["wait", agentSocket, namespace, String(perConnection), ...ids];
    return new ObserverProcess(args, cleanup, "SIGKILL").#started();
  }

  async #started(): Promise<this> {
    try {
      await this.#ready.promise;
      return this;
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  async #read(): Promise<void> {
    let buffer = "";
    for await (const chunk of this.#process.stdout.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = JSON.parse(buffer.slice(0, nl)) as Line;
        buffer = buffer.slice(nl + 1);
        if (line.ready) this.#ready.resolve();
        if (line.kind === "error") this.errors.push(`${line.id}: ${line.error}`);
        if (line.kind === "answer" && line.id) this.statuses.set(line.id, line.status ?? -1);
        if (!line.id || line.at === undefined || line.exitedAt === undefined) continue;
        const arrival = { at: line.at, exitedAt: line.exitedAt };
        if (line.kind === "exit") this.exits.set(line.id, arrival);
        else if (line.kind === "answer") this.answers.set(line.id, arrival);
        else if (line.kind === "delete") this.deletes.set(line.id, arrival);
        else if (line.kind === "seen") {
          const poller = line.poller ?? 0;
          if (!this.seen.has(poller)) this.seen.set(poller, new Map());
          this.seen.get(poller)!.set(line.id, arrival);
        }
      }
    }
  }

  async close(): Promise<void> {
    try {
      this.#process.kill(this.#stopSignal);
    } catch {
      // Gone already.
    }
    await this.#process.status;
    await this.#reading;
    this.#untrack();
  }
}
