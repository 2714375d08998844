/**
 * What every benchmark gets from bench/main.ts and gives back.
 *
 * @module
 */
import type { Row } from "./report.ts";

export interface BenchContext {
  /** Small sizes, short windows (CI). */
  quick: boolean;
  /** Extra `deno run` flags for agent processes (e.g. --cpu-prof for profiling). */
  agentDenoFlags: string[];
  /** Profile the agents where a benchmark summarises their CPU profiles (latency). */
  profile?: boolean;
  /** The latency benchmark's containerd on CPU 0, everything else of the run on the others. */
  splitCpus?: boolean;
  /** The latency benchmark's containerd in a cpu cgroup of its own, the rest of the run in another. */
  cgroups?: boolean;
  /** Progress, on stderr. */
  log(message: string): void;
  /** Something the reader of the results must know (printed under the table, kept in the JSON). */
  note(message: string): void;
  /** What to undo if the run is interrupted (SIGINT/SIGTERM): processes, containerd, temp dirs. */
  cleanup: Cleanups;
}

/**
 * Undo actions of live resources. Each benchmark still releases its resources itself
 * (finally); these run only when the run is interrupted, newest first.
 */
export class Cleanups {
  readonly #actions = new Set<() => Promise<unknown> | unknown>();
  #interrupted = false;

  /**
   * Registers `action`; returns the function that unregisters it. Once interrupted,
   * the action runs at once (a resource made while the others are being cleaned up).
   */
  add(action: () => Promise<unknown> | unknown): () => void {
    if (this.#interrupted) {
      Promise.resolve().then(action).catch(() => {});
      return () => {};
    }
    this.#actions.add(action);
    return () => this.#actions.delete(action);
  }

  /** Kills a child process if the run is interrupted. */
  child(process: Deno.ChildProcess): () => void {
    return this.add(() => {
      try {
        process.kill("SIGKILL");
      } catch {
        // Gone already.
      }
    });
  }

  async runAll(): Promise<void> {
    this.#interrupted = true;
    for (const action of [...this.#actions].reverse()) {
      this.#actions.delete(action);
      try {
        await action();
      } catch {
        // Best effort: go on with the others.
      }
    }
  }
}

export interface BenchResult {
  /** Sizes and settings the figures were measured with. */
  params: Record<string, unknown>;
  /** Every measured number, in more detail than the rows. */
  figures: Record<string, unknown>;
  rows: Row[];
  /** More tables (Markdown), printed under the main one. */
  tables?: Array<{ title: string; markdown: string }>;
}

/** A temporary directory with a short path (unix socket paths are limited to 107 bytes). */
export async function tempDir(ctx: BenchContext, prefix: string): Promise<
  { path: string; [Symbol.asyncDispose](): Promise<void> }
> {
  const path = await Deno.makeTempDir({ prefix: `psd-${prefix}-` });
  const remove = () => Deno.remove(path, { recursive: true }).catch(() => {});
  const untrack = ctx.cleanup.add(remove);
  return {
    path,
    async [Symbol.asyncDispose]() {
      untrack();
      await remove();
    },
  };
}

export const MB = 1024 * 1024;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
