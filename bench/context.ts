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
  /** Progress, on stderr. */
  log(message: string): void;
  /** Something the reader of the results must know (printed under the table, kept in the JSON). */
  note(message: string): void;
}

export interface BenchResult {
  /** Sizes and settings the figures were measured with. */
  params: Record<string, unknown>;
  /** Every measured number, in more detail than the rows. */
  figures: Record<string, unknown>;
  rows: Row[];
}

/** A temporary directory with a short path (unix socket paths are limited to 107 bytes). */
export async function tempDir(prefix: string): Promise<
  { path: string; [Symbol.asyncDispose](): Promise<void> }
> {
  const path = await Deno.makeTempDir({ prefix: `psd-${prefix}-` });
  return {
    path,
    async [Symbol.asyncDispose]() {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    },
  };
}

export const MB = 1024 * 1024;

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
