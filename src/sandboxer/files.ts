/**
 * A sandbox's files where containerd's CRI expects them, so app containers get them
 * mounted: `<cri root>/sandboxes/<id>/{hostname,hosts,resolv.conf}` and the shm tmpfs at
 * `<cri state>/sandboxes/<id>/shm`.
 *
 * @module
 */
import { join } from "node:path";
import { CRI_PLUGIN_DIR } from "../config/defaults.ts";
import { NamespaceMode, type PodSandboxConfig } from "../gen/cri/runtime/v1/api.ts";
import type { HostMounts } from "./mounts.ts";
import { resolvConf } from "./spec.ts";

/** The sandbox's /dev/shm: 64 MiB, like containerd's. */
export const SHM_OPTIONS = ["nosuid", "nodev", "noexec", "mode=1777", "size=67108864"];

/** The CRI's directories: `root` (persistent) and `state` (volatile, under /run). */
export interface CriDirs {
  root: string;
  state: string;
}

/** The CRI's directories of a containerd with these root and state directories. */
export function criDirs(containerdRoot: string, containerdState: string): CriDirs {
  return {
    root: join(containerdRoot, CRI_PLUGIN_DIR),
    state: join(containerdState, CRI_PLUGIN_DIR),
  };
}

/** Where sandbox `id`'s files go. */
export function sandboxPaths(dirs: CriDirs, id: string) {
  const rootDir = join(dirs.root, "sandboxes", id);
  const stateDir = join(dirs.state, "sandboxes", id);
  return {
    rootDir,
    stateDir,
    hostname: join(rootDir, "hostname"),
    hosts: join(rootDir, "hosts"),
    resolvConf: join(rootDir, "resolv.conf"),
    shm: join(stateDir, "shm"),
  };
}
export type SandboxPaths = ReturnType<typeof sandboxPaths>;

/** The node's files a sandbox's are made from. */
export interface NodeFiles {
  /** @default "/etc/hosts" */
  hosts: string;
  /** @default "/etc/resolv.conf" */
  resolvConf: string;
  /** The node's hostname, for pods that set none. */
  hostname: () => string;
}

export const DEFAULT_NODE_FILES: NodeFiles = {
  hosts: "/etc/hosts",
  resolvConf: "/etc/resolv.conf",
  hostname: () => Deno.hostname(),
};

/** Creates the sandbox's two directories (0755, as the CRI does). */
export async function makeSandboxDirs(paths: SandboxPaths): Promise<void> {
  await Deno.mkdir(paths.rootDir, { recursive: true, mode: 0o755 });
  await Deno.mkdir(paths.stateDir, { recursive: true, mode: 0o755 });
}

/** Writes hostname, hosts and resolv.conf (0644) into the sandbox's root directory. */
export async function writeSandboxFiles(
  paths: SandboxPaths,
  config: PodSandboxConfig,
  node: NodeFiles,
): Promise<void> {
  const hostname = config.hostname || node.hostname();
  await Deno.writeTextFile(paths.hostname, hostname + "\n", { mode: 0o644 });
  await Deno.writeFile(paths.hosts, await Deno.readFile(node.hosts), { mode: 0o644 });
  const dns = config.dnsConfig;
  // No DNS config means the node's resolv.conf (the CRI's backwards-compatible reading).
  const resolv = dns
    ? new TextEncoder().encode(resolvConf(dns))
    : await Deno.readFile(node.resolvConf);
  await Deno.writeFile(paths.resolvConf, resolv, { mode: 0o644 });
}

/** True when the pod shares the node's IPC namespace (and so its /dev/shm). */
export function usesHostIpc(config: PodSandboxConfig): boolean {
  return config.linux?.securityContext?.namespaceOptions?.ipc === NamespaceMode.NODE;
}

/** Mounts the sandbox's shm tmpfs (its directory 0700 under the mount). */
export async function mountShm(paths: SandboxPaths, mounts: HostMounts): Promise<void> {
  await Deno.mkdir(paths.shm, { recursive: true, mode: 0o700 });
  await mounts.mount({ type: "tmpfs", source: "shm", target: paths.shm, options: SHM_OPTIONS });
}

/** Unmounts whatever is mounted under the sandbox's directories and removes both. */
export async function removeSandboxDirs(paths: SandboxPaths, mounts: HostMounts): Promise<void> {
  for (const dir of [paths.stateDir, paths.rootDir]) {
    await mounts.unmountAll(dir);
    await Deno.remove(dir, { recursive: true }).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
  }
}
