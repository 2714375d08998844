/**
 * Summaries of an agent's V8 CPU profile (`--cpu-prof`) over a window of wall-clock time
 * (a burst of exits): how many milliseconds the samples in it spent idle, in the garbage
 * collector, and in each part of the agent's stack — the deepest frame with a source
 * file decides (a builtin counts for the JS function that called it) — and the functions
 * with the most self time. Each sample counts for the sampling interval (the median gap
 * between samples): a longer gap is time the thread was not running (waiting for a CPU),
 * which says nothing about the function it was in.
 *
 * V8 stamps samples with CLOCK_MONOTONIC (µs); /proc/timer_list ("now at N nsecs", root
 * only) gives that clock to pair with the wall clock.
 *
 * @module
 */
import { join } from "node:path";
import { round } from "./stats.ts";
import { wallMs } from "./proc.ts";

/** A wall-clock instant paired with CLOCK_MONOTONIC. */
export interface ClockAnchor {
  wallMs: number;
  monotonicUs: number;
}

/** Reads CLOCK_MONOTONIC through /proc/timer_list, paired with the wall clock. */
export function clockAnchor(): ClockAnchor {
  const before = wallMs();
  const file = Deno.openSync("/proc/timer_list");
  try {
    const buf = new Uint8Array(4096);
    const n = file.readSync(buf) ?? 0;
    const after = wallMs();
    const m = /now at (\d+) nsecs/.exec(new TextDecoder().decode(buf.subarray(0, n)));
    if (!m) throw new Error("no 'now at' line in /proc/timer_list");
    return { wallMs: (before + after) / 2, monotonicUs: Number(m[1]) / 1000 };
  } finally {
    file.close();
  }
}

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Wall-clock ms the window lasted. */
  windowMs: number;
  /** The sampling interval (µs, the median gap between samples). */
  intervalUs: number;
  /** Time in gaps between samples longer than two intervals (ms): the thread not running. */
  stalledMs: number;
  /** Sampled time in the window, by part of the stack (ms), busiest first. */
  byArea: Record<string, number>;
  /** Functions with the most self time (ms), busiest first. */
  topFunctions: Array<{ fn: string; ms: number }>;
}

/** The agent's profile file in `dir` (Deno names them CPU.<time>.<pid>.cpuprofile). */
export async function findProfile(dir: string, pid: number): Promise<string | undefined> {
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.endsWith(`.${pid}.cpuprofile`)) return join(dir, entry.name);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return undefined;
}

/** Which part of the agent's stack a source file belongs to. */
function areaOf(url: string, name: string): string | undefined {
  if (name === "(idle)") return "idle";
  if (name === "(garbage collector)") return "gc";
  if (name === "(program)") return "V8/Deno runtime (program)";
  if (url === "") return undefined;
  if (url.includes("@grpc/grpc-js")) return "grpc-js";
  if (/deno_node\/.*http2|node:http2|internal\/http2/.test(url)) return "node:http2";
  if (url.includes("deno_node") || url.startsWith("node:")) return "node compat (streams, net, …)";
  if (url.includes("deno_kv") || url.includes("ext:deno_kv")) return "Deno KV";
  if (url.includes("@logtape") || url.endsWith("/src/log.ts")) return "logging";
  if (url.includes("@bufbuild") || url.includes("/src/gen/")) return "protobuf";
  const src = /\/src\/([a-z_]+)\//.exec(url);
  if (src) return `src/${src[1]}`;
  if (url.startsWith("ext:")) return "Deno runtime (ext:)";
  return "other";
}

/** Sampled time of `profile` between wall-clock `from` and `to`, summarised. */
export function summariseProfile(
  profile: CpuProfile,
  window: { from: number; to: number },
  anchor: ClockAnchor,
  top = 12,
): ProfileSummary {
  const toMono = (wall: number) => anchor.monotonicUs + (wall - anchor.wallMs) * 1000;
  const from = toMono(window.from);
  const to = toMono(window.to);
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const areaCache = new Map<number, string>();
  const area = (id: number): string => {
    const cached = areaCache.get(id);
    if (cached) return cached;
    const n = nodes.get(id)!;
    const own = areaOf(n.callFrame.url, n.callFrame.functionName);
    const p = parent.get(id);
    const found = own ?? (p === undefined ? "V8/Deno runtime (program)" : area(p));
    areaCache.set(id, found);
    return found;
  };
  const byArea = new Map<string, number>();
  const byFn = new Map<string, number>();
  const sortedDeltas = [...profile.timeDeltas].sort((a, b) => a - b);
  const interval = sortedDeltas[Math.floor(sortedDeltas.length / 2)] ?? 0;
  let t = profile.startTime;
  let stalledMs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    if (t < from || t > to) continue;
    const gap = profile.timeDeltas[i + 1] ?? interval;
    if (gap > 2 * interval) stalledMs += (gap - interval) / 1000;
    const next = interval;
    const id = profile.samples[i];
    const a = area(id);
    byArea.set(a, (byArea.get(a) ?? 0) + next / 1000);
    if (a === "idle") continue;
    const f = nodes.get(id)!.callFrame;
    const file = f.url.slice(f.url.lastIndexOf("/") + 1);
    const fn = `${f.functionName || "(anonymous)"}${file ? ` ${file}:${f.lineNumber + 1}` : ""}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + next / 1000);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  return {
    windowMs: round(window.to - window.from),
    intervalUs: round(interval),
    stalledMs: round(stalledMs),
    byArea: Object.fromEntries(sorted(byArea).map(([k, v]) => [k, round(v)])),
    topFunctions: sorted(byFn).slice(0, top).map(([fn, ms]) => ({ fn, ms: round(ms) })),
  };
}

/** Reads a .cpuprofile file. */
export async function readProfile(path: string): Promise<CpuProfile> {
  return JSON.parse(await Deno.readTextFile(path)) as CpuProfile;
}
