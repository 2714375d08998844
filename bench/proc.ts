/**
 * What the benchmarks read about processes and the machine from /proc: RSS, CPU time,
 * load, and the machine description the README quotes.
 *
 * @module
 */

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Resident set size of `pid` in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

/** Peak resident set size of `pid` in bytes (VmHWM). */
export function peakRssBytes(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = /^VmHWM:\s+(\d+) kB/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kb) * 1024;
}

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime/stime in /proc/PID/stat. */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).outputSync();
    clockTicks = Number(new TextDecoder().decode(out.stdout).trim()) || 100;
  }
  return clockTicks;
}

/** CPU time (user + system, all threads) `pid` has used so far, in milliseconds. */
export function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // Fields after the command name, which is in parentheses and may contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return (utime + stime) * 1000 / clockTicksPerSecond();
}

/** The sum of one field (ns) of /proc/PID/task/TID/schedstat over the threads of `pid`, in ms. */
function schedstatMs(pid: number, field: 0 | 1): number {
  let ns = 0;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const fields = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/schedstat`).split(" ");
      ns += Number(fields[field]);
    } catch {
      // The thread ended while we looked.
    }
  }
  return ns / 1e6;
}

/**
 * Time the threads of `pid` spent runnable but waiting for a CPU (run queue delay, from
 * /proc/PID/task/TID/schedstat), in milliseconds: how much the machine, not the process,
 * held it back.
 */
export function runDelayMs(pid: number): number {
  return schedstatMs(pid, 1);
}

/**
 * Time the threads of `pid` spent on a CPU, in milliseconds (nanosecond precision, from
 * /proc/PID/task/TID/schedstat); 0 once the process is gone. Threads that ended are not
 * counted: for short windows (a burst), not for long ones (cpuMs counts them).
 */
export function onCpuMs(pid: number): number {
  try {
    return schedstatMs(pid, 0);
  } catch {
    return 0; // the process ended
  }
}

/**
 * CPU time of the whole machine, all CPUs together, in ms (/proc/stat, 10 ms ticks):
 * `busy` running any process (user, nice, system, irq, softirq), `steal` taken by the
 * hypervisor from this VM while it wanted to run.
 */
export function machineCpuMs(): { busy: number; steal: number } {
  const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1)
    .map(Number);
  const ms = (ticks: number) => ticks * 1000 / clockTicksPerSecond();
  // user nice system idle iowait irq softirq steal guest guest_nice (guest is in user).
  return { busy: ms(f[0] + f[1] + f[2] + f[5] + f[6]), steal: ms(f[7]) };
}

/** The 1-minute load average. */
export function loadAverage(): number {
  return Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]);
}

/** Resolves once `pid` has used no CPU for `quietMs` (its work is done), or after `timeoutMs`. */
export async function quiescent(
  pid: number,
  { quietMs = 300, timeoutMs = 30_000 } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = cpuMs(pid);
  let quietSince = Date.now();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const now = cpuMs(pid);
    if (now !== last) {
      last = now;
      quietSince = Date.now();
    } else if (Date.now() - quietSince >= quietMs) return;
  }
}

export interface Machine {
  cores: number;
  cpuModel: string;
  kernel: string;
  deno: string;
  v8: string;
  memoryMiB: number;
}

export function machine(): Machine {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const meminfo = Deno.readTextFileSync("/proc/meminfo");
  return {
    cores: navigator.hardwareConcurrency,
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    memoryMiB: Math.round(Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? 0) / 1024),
  };
}

/** Total bytes of the files under `dir` (apparent size) and the blocks they occupy. */
export async function diskUsage(dir: string): Promise<{ bytes: number; allocated: number }> {
  let bytes = 0;
  let allocated = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) {
      const sub = await diskUsage(path);
      bytes += sub.bytes;
      allocated += sub.allocated;
    } else if (entry.isFile) {
      const info = await Deno.stat(path);
      bytes += info.size;
      allocated += (info.blocks ?? 0) * 512;
    }
  }
  return { bytes, allocated };
}

/**
 * Sets the CPU affinity of every thread of `pid` (`cpus` as taskset reads it, "0" or
 * "1-3"); processes it starts afterwards inherit it. An error message, or undefined.
 */
export async function pinToCpus(pid: number, cpus: string): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("taskset", {
      args: ["--all-tasks", "--pid", "--cpu-list", cpus, String(pid)],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (out.success) return undefined;
    return `taskset could not pin pid ${pid} to CPUs ${cpus}: ${
      new TextDecoder().decode(out.stderr).trim()
    }`;
  } catch (err) {
    return `taskset (util-linux) could not run: ${(err as Error).message}`;
  }
}

/** The cpu controller's hierarchy: cgroup v1's cpu mount, or v2's root with cpu enabled. */
function cpuHierarchy(): string | undefined {
  for (const dir of ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup"]) {
    try {
      if (dir.endsWith("/cpu")) {
        Deno.statSync(`${dir}/cpu.shares`);
        return dir;
      }
      const controllers = Deno.readTextFileSync(`${dir}/cgroup.controllers`);
      if (controllers.split(/\s+/).includes("cpu")) return dir;
    } catch {
      // not this layout
    }
  }
  return undefined;
}

/**
 * A cpu cgroup of its own with the default weight, as systemd gives each service: CPU
 * time is then shared between the cgroups, not between their threads. `join(pid)` moves
 * a process (children it starts afterwards follow); `remove()` moves what is left back to
 * the root and deletes the cgroup.
 */
export class CpuCgroup {
  private constructor(readonly path: string, readonly root: string) {}

  static create(name: string): CpuCgroup {
    const root = cpuHierarchy();
    if (!root) throw new Error("no cpu cgroup controller found under /sys/fs/cgroup");
    const path = `${root}/${name}`;
    Deno.mkdirSync(path, { recursive: true });
    return new CpuCgroup(path, root);
  }

  join(pid: number): void {
    Deno.writeTextFileSync(`${this.path}/cgroup.procs`, `${pid}\n`);
  }

  remove(): void {
    try {
      const pids = Deno.readTextFileSync(`${this.path}/cgroup.procs`).split("\n").filter(Boolean);
      for (const pid of pids) {
        try {
          Deno.writeTextFileSync(`${this.root}/cgroup.procs`, `${pid}\n`);
        } catch {
          // gone meanwhile
        }
      }
      Deno.removeSync(this.path);
    } catch {
      // already gone
    }
  }
}
