/**
 * Benchmark 6, store size: bytes on disk per recorded sandbox, with N records (each with
 * its exit) written by the agent — the state benchmark 2 leaves, or a burst of its own
 * when that did not run. Baseline: the record's own size as JSON.
 *
 * @module
 */
import { join } from "node:path";
import { KvSandboxStore, STATE_FILE } from "../src/store/kv_store.ts";
import type { SandboxRecord } from "../src/store/types.ts";
import { burstBenchmark } from "./burst.ts";
import { type BenchContext, type BenchResult, tempDir } from "./context.ts";
import { diskUsage, loadAverage } from "./proc.ts";
import { row } from "./report.ts";
import { round } from "./stats.ts";
import { NAMESPACE } from "./synthetic.ts";

export async function storeBenchmark(
  ctx: BenchContext,
  state?: { dir: string; records: SandboxRecord[] },
): Promise<BenchResult> {
  await using scratch = await tempDir(ctx, "store");
  if (!state) {
    ctx.log("store: recording a burst of its own");
    state = (await burstBenchmark(ctx, { keepStateIn: join(scratch.path, "state") })).state!;
  }
  const load = loadAverage();
  const count = state.records.length;
  const usage = await diskUsage(state.dir);
  const files: Record<string, number> = {};
  for await (const entry of Deno.readDir(state.dir)) {
    files[entry.name] = (await Deno.stat(join(state.dir, entry.name))).size;
  }
  // Sanity: the store opens and holds them all.
  const store = await KvSandboxStore.open(join(state.dir, STATE_FILE));
  try {
    const listed = (await store.list({ namespace: NAMESPACE })).length;
    if (listed !== count) throw new Error(`store: ${listed} records listed, ${count} expected`);
  } finally {
    store.close();
  }
  const jsonBytes = state.records.reduce((n, r) => n + JSON.stringify(r).length, 0) / count;
  const perRecord = usage.bytes / count;
  return {
    params: { records: count },
    figures: {
      bytesOnDisk: usage.bytes,
      allocatedBytes: usage.allocated,
      files,
      bytesPerRecord: round(perRecord),
      allocatedPerRecord: round(usage.allocated / count),
      jsonBytesPerRecord: round(jsonBytes),
      load,
    },
    rows: [
      row("6 store", `bytes on disk per sandbox (${count} records with exits)`, perRecord, "B", {
        baseline: { what: "the record as JSON", value: jsonBytes },
        load,
      }),
    ],
  };
}
