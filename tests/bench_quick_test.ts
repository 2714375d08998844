/**
 * The benchmarks keep running: `deno task bench --quick` (small sizes) exits 0 and writes
 * well-formed JSON with every benchmark in it. Timing targets are benchmarks, never test
 * assertions: nothing here looks at how fast anything was.
 */
import { join } from "node:path";
import { BENCHMARKS } from "../bench/main.ts";
import { assert, assertEquals } from "./harness/assert.ts";
import { run } from "./harness/process.ts";

const root = new URL("..", import.meta.url).pathname;

Deno.test("deno task bench --quick runs every benchmark and writes well-formed JSON", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-benchq-" });
  try {
    const out = join(dir, "latest.json");
    const res = await run(Deno.execPath(), [
      "task",
      "--cwd",
      root,
      "bench",
      "--quick",
      "--out",
      out,
    ], { allowFailure: true });
    assertEquals(res.code, 0, `stdout:\n${res.stdout}\nstderr:\n${res.stderr}`);
    const report = JSON.parse(await Deno.readTextFile(out));
    assertEquals(report.quick, true);
    for (const field of ["cores", "cpuModel", "kernel", "deno", "loadAtStart", "loadAtEnd"]) {
      assert(report.machine?.[field] !== undefined, `machine.${field} missing`);
    }
    for (const name of BENCHMARKS) {
      const result = report.benchmarks?.[name];
      assert(result, `benchmark ${name} missing`);
      assertEquals(result.error, undefined, `benchmark ${name} failed: ${result.error}`);
      assert(result.rows.length > 0, `benchmark ${name} has no rows`);
      for (const r of result.rows) {
        assert(r.benchmark.endsWith(` ${name}`), `row ${r.figure} filed under ${r.benchmark}`);
        assert(typeof r.figure === "string" && r.figure.length > 0);
        assert(Number.isFinite(r.value), `${name}: ${r.figure} = ${r.value}`);
        assert(typeof r.unit === "string");
        assert(Number.isFinite(r.load));
        if (r.baseline) assert(Number.isFinite(r.baseline.value), `${r.figure}: baseline`);
        if (r.target) assert(typeof r.target.met === "boolean" && r.target.text.length > 0);
      }
    }
    // The latency benchmark's exit traces (PODSANDBOXD_EXIT_TRACE=1): every exit of every
    // burst has one, naming the source that recorded it, with the stages up to the answer.
    const latency = report.benchmarks.latency.figures;
    const modes: Array<[string, string[]]> = [
      ["shimWaitOn", ["shim", "event"]],
      ["shimWaitOff", ["event"]],
    ];
    for (const [mode, sources] of modes) {
      for (const b of latency[mode].bursts) {
        const what = `latency ${mode}, ${b.count} at once`;
        assertEquals(b.breakdown.untraced, 0, `${what}: exits without a trace`);
        const won = b.breakdown.won as Record<string, number>;
        assert(
          Object.keys(won).every((s) => sources.includes(s)),
          `${what}: won by ${Object.keys(won)}`,
        );
        assertEquals(Object.values(won).reduce((a, n) => a + n, 0), b.count, `${what}: sources`);
        for (
          const stage of ["WON.dispatched", "WON.committed", "group.end", "notified", "answered"]
        ) {
          assertEquals(b.breakdown.stages[stage]?.count, b.count, `${what}: ${stage}`);
        }
      }
    }
    // The table on stdout carries the same rows as the JSON.
    assertEquals(report.rows.length, BENCHMARKS.flatMap((n) => report.benchmarks[n].rows).length);
    for (const r of report.rows) assert(res.stdout.includes(r.figure), `${r.figure} not printed`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
