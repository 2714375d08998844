/**
 * One row per figure: the measured value beside its baseline from the same run, their
 * ratio, the target and whether it was met; printed as one table and written as
 * JSON with the same numbers.
 *
 * @module
 */
import { round } from "./stats.ts";

export interface Target {
  /** What the target constrains, as the issue states it ("≤ 10 ms", "≥ 50× below"). */
  text: string;
  met: boolean;
}

export interface Row {
  /** Benchmark number and name, e.g. "1 latency". */
  benchmark: string;
  figure: string;
  value: number;
  unit: string;
  baseline?: { what: string; value: number };
  /** value / baseline. */
  ratio?: number;
  target?: Target;
  /** 1-minute load average when the figure was measured. */
  load: number;
}

/** A row, with ratio = value / baseline when both are finite. */
export function row(
  benchmark: string,
  figure: string,
  value: number,
  unit: string,
  options: { baseline?: { what: string; value: number }; target?: Target; load: number },
): Row {
  const r: Row = { benchmark, figure, value: round(value), unit, load: options.load };
  if (options.baseline) {
    r.baseline = { what: options.baseline.what, value: round(options.baseline.value) };
    if (options.baseline.value !== 0 && Number.isFinite(options.baseline.value)) {
      r.ratio = round(value / options.baseline.value);
    }
  }
  if (options.target) r.target = options.target;
  return r;
}

function cell(value: number | undefined, unit = ""): string {
  if (value === undefined) return "—";
  if (!Number.isFinite(value)) return String(value);
  return `${value.toLocaleString("en-US", { maximumFractionDigits: 3 })}${unit ? " " + unit : ""}`;
}

/** The table as Markdown (it is what the README quotes). */
export function formatTable(rows: Row[]): string {
  const header = ["#", "figure", "value", "baseline (same run)", "ratio", "target", "met", "load"];
  const lines = rows.map((r) => [
    r.benchmark,
    r.figure,
    cell(r.value, r.unit),
    r.baseline ? `${cell(r.baseline.value, r.unit)} (${r.baseline.what})` : "—",
    r.ratio === undefined ? "—" : `${cell(r.ratio)}×`,
    r.target?.text ?? "—",
    r.target === undefined ? "—" : r.target.met ? "met" : "**missed**",
    r.load.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(" | ")} |`;
  return [
    fmt(header),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...lines.map(fmt),
  ].join("\n");
}

/** Lines of cells as a Markdown table: the first is the header; the first column left-aligned, the others right. */
export function markdownTable(lines: string[][]): string {
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) =>
    `| ${
      cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(" | ")
    } |`;
  const rule = widths.map((w, i) => (i === 0 ? "-".repeat(w) : "-".repeat(w - 1) + ":"));
  return [fmt(lines[0]), `| ${rule.join(" | ")} |`, ...lines.slice(1).map(fmt)].join("\n");
}
