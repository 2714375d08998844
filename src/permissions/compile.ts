/**
 * The permissions `deno task compile` bakes into the binary: the standard layout, the
 * containerd sockets of k3s/RKE2, microk8s and Docker (each also as /var/run/…, which
 * links to /run but is a different path to Deno), loopback for metrics, and the site's
 * own paths (`--grant PATH`, repeatable).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { SOCKET_NAME, SYSTEM_RUNTIME_DIR, SYSTEM_STATE_DIR } from "../config/defaults.ts";
import { CONTAINERD_LAYOUTS, CONTAINERD_SOCKET_CANDIDATES } from "../config/detect.ts";
import { DEFAULT_CONFIG_FILE } from "../config/load.ts";
import { permissionFlags, type PermissionSet, permissionSet } from "./flags.ts";
import { type Access, GROUP_FILE, type Need, sandboxerNeeds, shimWaitNeeds } from "./needs.ts";

/** Metrics on loopback, any port. */
export const LOOPBACK_HOSTS: readonly string[] = ["127.0.0.1", "::1", "localhost"];

/** The standard layout and every distribution's containerd socket. */
export function bakedNeeds(): Need[] {
  const needs: Need[] = [
    { kind: "directory", path: SYSTEM_STATE_DIR, why: "--state" },
    { kind: "listen", path: join(SYSTEM_RUNTIME_DIR, SOCKET_NAME), why: "--socket" },
    { kind: "listen", path: join(SYSTEM_RUNTIME_DIR, "metrics.sock"), why: "--metrics-address" },
    // Any config file in /etc/podsandboxd.
    { kind: "read", path: dirname(DEFAULT_CONFIG_FILE), why: "--config" },
    { kind: "read", path: GROUP_FILE, why: "--socket-group" },
    ...CONTAINERD_SOCKET_CANDIDATES.map((path): Need => ({
      kind: "connect",
      path,
      why: "--address",
    })),
    ...LOOPBACK_HOSTS.map((host): Need => ({ kind: "tcp", host, why: "--metrics-address" })),
    // Shim wait: every layout's task bundles, and the directories shims put sockets in.
    ...CONTAINERD_LAYOUTS.flatMap((l) => shimWaitNeeds(l.state)),
  ];
  return [...needs, ...needs.flatMap(varRunForm)];
}

/** /run/X as /var/run/X too. */
function varRunForm(need: Need): Need[] {
  return "path" in need && need.path.startsWith("/run/")
    ? [{ ...need, path: `/var${need.path}` }]
    : [];
}

/**
 * What `--grant VALUE` adds: a path (read and write on it and below it; connect and
 * listen if it is a unix socket), or a TCP HOST or HOST:PORT. RangeError otherwise.
 */
export function grantNeeds(value: string): Need[] {
  const why = `--grant ${value}`;
  if (value.startsWith("/")) {
    return [{ kind: "directory", path: value, why }, { kind: "connect", path: value, why }];
  }
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(value);
  if (m && (m[2] === undefined || (Number(m[2]) > 0 && Number(m[2]) < 65536))) {
    const host = m[1].replace(/^\[|\]$/g, "");
    return [{ kind: "tcp", host, port: m[2] === undefined ? undefined : Number(m[2]), why }];
  }
  throw new RangeError(
    `--grant: invalid value ${
      JSON.stringify(value)
    }: an absolute path (directory, file or unix socket) or a TCP HOST[:PORT]`,
  );
}

/** The `--grant` value that adds an access (undefined: none can, e.g. any host). */
export function grantFor(access: Access): string | undefined {
  if (access.name === "run" || access.name === "sys") return undefined;
  if (access.name !== "net") return access.path;
  if (access.host === undefined) return undefined;
  return access.host.startsWith("unix:") ? access.host.slice("unix:".length) : access.host;
}

/** What running pod sandboxes takes in each known layout (compile --sandboxer). */
export function bakedSandboxerNeeds(): Need[] {
  return CONTAINERD_LAYOUTS.flatMap((l) =>
    sandboxerNeeds({ containerdRoot: l.root, containerdState: l.state })
  );
}

/** The baked permissions with the site's grants (and, with `sandboxer`, its needs). */
export function compilePermissionSet(
  grants: readonly string[] = [],
  options: { sandboxer?: boolean } = {},
): PermissionSet {
  return permissionSet([
    ...bakedNeeds(),
    ...(options.sandboxer ? bakedSandboxerNeeds() : []),
    ...grants.flatMap(grantNeeds),
  ]);
}

/** `deno compile` arguments for the binary at `output`. */
export function compileArgs(
  options: { root: string; output: string; grants?: readonly string[]; sandboxer?: boolean },
): string[] {
  return [
    "compile",
    "--config",
    join(options.root, "deno.json"),
    ...permissionFlags(compilePermissionSet(options.grants, options)),
    "--output",
    options.output,
    join(options.root, "main.ts"),
  ];
}
