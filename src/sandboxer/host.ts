/**
 * What a sandbox's spec depends on about this node, read once: architecture, kernel
 * version, seccomp and SELinux support, whether the agent runs in a user namespace, its
 * own OOM score (for restrict_oom_score_adj).
 *
 * @module
 */
import { goArch } from "./image.ts";
import { readProcSelf } from "./proc_self.ts";
import type { SandboxHost } from "./spec.ts";

async function readOrUndefined(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

/** "6.1.0-28-amd64" → {6, 1}; {0, 0} when unreadable. */
export function parseKernelVersion(release: string): { major: number; minor: number } {
  const m = /^(\d+)\.(\d+)/.exec(release);
  return m ? { major: Number(m[1]), minor: Number(m[2]) } : { major: 0, minor: 0 };
}

/** True when /proc/self/uid_map maps less than the whole id range (a user namespace). */
export function inUserNamespace(uidMap: string | undefined): boolean {
  if (uidMap === undefined) return false;
  const rows = uidMap.trim().split("\n").map((l) => l.trim().split(/\s+/));
  return !(rows.length === 1 && rows[0][0] === "0" && rows[0][1] === "0" &&
    rows[0][2] === "4294967295");
}

export async function detectHost(
  options: { restrictOomScoreAdj?: boolean } = {},
): Promise<SandboxHost> {
  const status = await readProcSelf("status");
  const oom = options.restrictOomScoreAdj
    ? Number((await readProcSelf("oom_score_adj"))?.trim())
    : undefined;
  return {
    arch: goArch(),
    kernel: parseKernelVersion(Deno.osRelease()),
    // The kernel reports a Seccomp line only when built with seccomp.
    seccompEnabled: /^Seccomp:/m.test(status ?? ""),
    selinuxEnabled: (await readOrUndefined("/sys/fs/selinux/enforce")) !== undefined,
    inUserNamespace: inUserNamespace(await readProcSelf("uid_map")),
    enableUnprivilegedPorts: true,
    enableUnprivilegedIcmp: true,
    minOomScoreAdj: oom !== undefined && Number.isInteger(oom) ? oom : undefined,
  };
}
