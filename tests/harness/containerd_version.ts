/**
 * Which containerd the tests and benchmarks start: `PODSANDBOXD_CONTAINERD=1.6|1.7|2.1`.
 * 1.6 (the default) is the system's (Debian bookworm, on PATH); 1.7 and 2.1 are Debian's
 * trixie and sid builds, fetched once by scripts/containerd-versions.sh into the
 * repository's ignored .cache/ and run from there. runc is always the system's.
 *
 * @module
 */
import { join } from "node:path";
import { run } from "./process.ts";

export const CONTAINERD_VERSIONS = ["1.6", "1.7", "2.1"] as const;
export type ContainerdVersion = typeof CONTAINERD_VERSIONS[number];

/** The environment variable that selects the version. */
export const CONTAINERD_VERSION_ENV = "PODSANDBOXD_CONTAINERD";

const SCRIPT = new URL("../../scripts/containerd-versions.sh", import.meta.url).pathname;

/** Parses a version name; throws naming the accepted ones. */
export function parseContainerdVersion(value: string): ContainerdVersion {
  const v = value.trim();
  if ((CONTAINERD_VERSIONS as readonly string[]).includes(v)) return v as ContainerdVersion;
  throw new RangeError(
    `${CONTAINERD_VERSION_ENV}=${value}: not a containerd version the tests can run (accepted: ${
      CONTAINERD_VERSIONS.join(", ")
    })`,
  );
}

/** The version selected by the environment (1.6 when unset or empty). */
export function selectedContainerdVersion(): ContainerdVersion {
  const value = Deno.env.get(CONTAINERD_VERSION_ENV) ?? "";
  return value === "" ? "1.6" : parseContainerdVersion(value);
}

/** containerd's config file version: 3 from containerd 2.0 on, 2 before. */
export function configVersion(version: ContainerdVersion): 2 | 3 {
  return version === "2.1" ? 3 : 2;
}

/**
 * Whether a task whose init exited while containerd was down is still there, STOPPED with
 * its status, after containerd restarts. 1.6 keeps it; from 1.7 containerd's start-up
 * deletes it as a leaked shim (no process left, no sandbox-store entry) before it serves.
 */
export function keepsExitedTasksAcrossRestart(version: ContainerdVersion): boolean {
  return version === "1.6";
}

/**
 * The sandboxer containerd's sandbox store names for a CRI pod (with the tests' config):
 * 2.x's CRI keeps its pods there under its built-in controller, "podsandbox"; 1.7's CRI
 * does not use the store by default; 1.6 has none.
 */
export function criPodSandboxer(version: ContainerdVersion): string | undefined {
  return version === "2.1" ? "podsandbox" : undefined;
}

/** The binaries of one containerd version: absolute paths, and the PATH its containerd runs with. */
export interface ContainerdBinaries {
  version: ContainerdVersion;
  containerd: string;
  ctr: string;
  shim: string;
  /** Directory holding the three (first on containerd's PATH, so it finds its shim). */
  binDir: string;
  /** Environment for the containerd process: PATH with binDir first; runc stays the system's. */
  env: Record<string, string>;
}

const cache = new Map<ContainerdVersion, Promise<ContainerdBinaries>>();

async function which(bin: string): Promise<string | undefined> {
  const { code, stdout } = await run("sh", ["-c", `command -v ${bin}`], { allowFailure: true });
  return code === 0 ? stdout.trim() : undefined;
}

async function locate(version: ContainerdVersion): Promise<ContainerdBinaries> {
  let binDir: string;
  if (version === "1.6") {
    const found = await which("containerd");
    if (!found) {
      throw new Error(
        `missing containerd: install with "apt-get update && apt-get install -y containerd runc busybox-static"`,
      );
    }
    binDir = found.slice(0, found.lastIndexOf("/"));
  } else {
    // Fetches into .cache/ on first use (one fetch at a time across test processes).
    const res = await run(SCRIPT, ["--print-bin", version], { allowFailure: true });
    if (res.code !== 0) {
      throw new Error(
        `containerd ${version} is not available: scripts/containerd-versions.sh ${version} failed:\n${res.stderr}`,
      );
    }
    binDir = res.stdout.trim();
  }
  if (!await which("runc")) {
    throw new Error(`missing runc: install with "apt-get update && apt-get install -y runc"`);
  }
  const path = Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin";
  const binaries = {
    version,
    containerd: join(binDir, "containerd"),
    ctr: join(binDir, "ctr"),
    shim: join(binDir, "containerd-shim-runc-v2"),
    binDir,
    env: { PATH: version === "1.6" ? path : `${binDir}:${path}` },
  };
  for (const bin of [binaries.containerd, binaries.ctr, binaries.shim]) {
    if (!await Deno.stat(bin).catch(() => null)) {
      throw new Error(`containerd ${version}: ${bin} is missing`);
    }
  }
  return binaries;
}

/** The binaries of `version` (default: the selected one), fetched on first use. */
export function containerdBinaries(
  version: ContainerdVersion = selectedContainerdVersion(),
): Promise<ContainerdBinaries> {
  let p = cache.get(version);
  if (!p) {
    p = locate(version);
    // A failure is not cached: the next caller retries (e.g. once the network is back).
    p.catch(() => cache.delete(version));
    cache.set(version, p);
  }
  return p;
}
