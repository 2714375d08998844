/**
 * What a command needs from Deno's permissions, as a list of needs, each naming the path
 * or address and the option it comes from. Everything that grants or checks permissions
 * derives from these: the launcher's `deno run` flags, the compiled binary's baked
 * grants, and serve's pre-check.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { CRI_PLUGIN_DIR, SHIM_SOCKET_DIR, TASK_BUNDLES_DIR } from "../config/defaults.ts";
import type { LoadedServeConfig } from "../config/load.ts";
import type { ServeConfig } from "../config/serve_options.ts";

/** One thing the process must be allowed to do, and why (the option it comes from). */
export type Need =
  /** A directory the agent creates and writes (the state directory). */
  | { kind: "directory"; path: string; why: string }
  /** A file (or a path only stat-ed) the agent reads. */
  | { kind: "read"; path: string; why: string }
  /** A unix socket the agent listens on: created in its directory (created if missing). */
  | { kind: "listen"; path: string; why: string }
  /** A unix socket the agent connects to. */
  | { kind: "connect"; path: string; why: string }
  /** Any unix socket in a directory (names not known in advance, e.g. shim sockets). */
  | { kind: "sockets-in"; path: string; why: string }
  /** A TCP address the agent listens on (port undefined: any port of that host). */
  | { kind: "tcp"; host: string; port?: number; why: string }
  /** A program the agent runs (by name, found on PATH). */
  | { kind: "run"; command: string; why: string }
  /** System information the agent reads (Deno's sys kinds, e.g. "hostname"). */
  | { kind: "sys"; info: string; why: string };

/** The environment variables the agent, its defaults and grpc-js read. */
export const ENV_VARS: readonly string[] = [
  "STATE_DIRECTORY",
  "RUNTIME_DIRECTORY",
  "XDG_STATE_HOME",
  "XDG_RUNTIME_DIR",
  "HOME",
  "NO_COLOR",
  "PODSANDBOXD_*",
  "GRPC_*",
  "grpc_proxy",
  "http_proxy",
  "https_proxy",
  "no_grpc_proxy",
  "no_proxy",
];

/** System information read: the uid (root gets the system paths). */
export const SYS_INFO: readonly string[] = ["uid"];

/** Read to resolve the socket group's gid. */
export const GROUP_FILE = "/etc/group";

/** A TCP host as Deno's net permission spells it (IPv6 in brackets). */
export function netHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/**
 * Reading the configuration: the config file looked for (read even when it turns out
 * absent) and, with no --address configured, the candidate sockets detection stats.
 */
export function configNeeds(
  loaded: Pick<LoadedServeConfig, "fileLookedFor" | "candidates">,
): Need[] {
  const needs: Need[] = [{ kind: "read", path: loaded.fileLookedFor, why: "--config" }];
  for (const path of loaded.candidates ?? []) {
    needs.push({ kind: "read", path, why: "containerd socket detection" });
  }
  return needs;
}

/** Everything `serve` touches with this configuration. */
export function serveNeeds(
  loaded: Pick<LoadedServeConfig, "config" | "fileLookedFor" | "candidates">,
): Need[] {
  const { config } = loaded;
  const needs: Need[] = [
    ...configNeeds(loaded),
    { kind: "directory", path: config.state, why: "--state" },
    { kind: "listen", path: config.socket, why: "--socket" },
    { kind: "connect", path: config.address, why: "--address" },
    { kind: "read", path: GROUP_FILE, why: "--socket-group" },
  ];
  if (config.sandboxer !== undefined) needs.push(...sandboxerNeeds(config));
  if (config.shimWait === "on") needs.push(...shimWaitNeeds(config.containerdState));
  const metrics = config.metricsAddress;
  if (metrics && "path" in metrics) {
    needs.push({ kind: "listen", path: metrics.path, why: "--metrics-address" });
  } else if (metrics) {
    needs.push({
      kind: "tcp",
      host: metrics.hostname,
      port: metrics.port,
      why: "--metrics-address",
    });
  }
  return needs;
}

/**
 * Shim wait with containerd state `containerdState`: its task bundles name each shim's
 * socket, created as pods start, so the sockets' directories are granted.
 */
export function shimWaitNeeds(containerdState: string): Need[] {
  return [
    { kind: "read", path: join(containerdState, TASK_BUNDLES_DIR), why: "--containerd-state" },
    ...[...new Set([SHIM_SOCKET_DIR, join(containerdState, "s")])].map((path): Need => ({
      kind: "sockets-in",
      path,
      why: "--shim-wait",
    })),
  ];
}

/**
 * Running pod sandboxes (--sandboxer): the CRI's sandbox directories (hostname, hosts,
 * resolv.conf, the shm mount), the node files they copy, what the spec depends on about
 * the node, the pod's seccomp profiles, and mount(8)/umount(8) for shm and reading the
 * pause image's passwd.
 */
export function sandboxerNeeds(
  config: Pick<ServeConfig, "containerdRoot" | "containerdState">,
): Need[] {
  const why = "--sandboxer";
  return [
    { kind: "directory", path: join(config.containerdRoot, CRI_PLUGIN_DIR), why },
    { kind: "directory", path: join(config.containerdState, CRI_PLUGIN_DIR), why },
    { kind: "read", path: "/etc/hosts", why },
    { kind: "read", path: "/etc/resolv.conf", why },
    // Deno grants /proc/self only with -A: cat reads it (see src/sandboxer/proc_self.ts).
    { kind: "run", command: "cat", why },
    { kind: "read", path: "/sys/fs/selinux", why },
    { kind: "read", path: KUBELET_SECCOMP_DIR, why },
    { kind: "run", command: "mount", why },
    { kind: "run", command: "umount", why },
    { kind: "sys", info: "hostname", why },
    { kind: "sys", info: "osRelease", why },
  ];
}

/** Where the kubelet keeps Localhost seccomp profiles. */
export const KUBELET_SECCOMP_DIR = "/var/lib/kubelet/seccomp";

/** A client command talks to the agent's socket. */
export function clientNeeds(socket: string): Need[] {
  return [{ kind: "connect", path: socket, why: "--socket" }];
}

/** One permission: read or write a path (and below it), net to a host, a program, sys info. */
export type Access =
  | { name: "read" | "write"; path: string }
  /** host undefined: any host (Deno cannot scope unix sockets to a directory). */
  | { name: "net"; host?: string }
  | { name: "run"; command: string }
  | { name: "sys"; info: string };

/**
 * The permissions each kind of need takes, measured on Deno 2.9.6: connecting to a unix
 * socket needs read and write on its path and net on `unix:PATH` (exact: a directory
 * grant does not cover its sockets); listening also creates and checks its directory.
 */
export function accessesOf(need: Need): Access[] {
  switch (need.kind) {
    case "directory":
      return [{ name: "read", path: need.path }, { name: "write", path: need.path }];
    case "read":
      return [{ name: "read", path: need.path }];
    case "listen": {
      const dir = dirname(need.path);
      return [
        { name: "read", path: dir },
        { name: "write", path: dir },
        { name: "net", host: `unix:${need.path}` },
      ];
    }
    case "connect":
      return [
        { name: "read", path: need.path },
        { name: "write", path: need.path },
        { name: "net", host: `unix:${need.path}` },
      ];
    case "sockets-in":
      return [
        { name: "read", path: need.path },
        { name: "write", path: need.path },
        { name: "net" },
      ];
    case "tcp": {
      const host = netHost(need.host);
      return [{ name: "net", host: need.port === undefined ? host : `${host}:${need.port}` }];
    }
    case "run":
      return [{ name: "run", command: need.command }];
    case "sys":
      return [{ name: "sys", info: need.info }];
  }
}
