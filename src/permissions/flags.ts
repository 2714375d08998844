/**
 * Needs → Deno permissions: the one translation to `deno run`/`deno compile` flags and to
 * the descriptors serve's pre-check queries.
 *
 * @module
 */
import { type Access, accessesOf, ENV_VARS, type Need, SYS_INFO } from "./needs.ts";

/** Granted permissions by kind; `net: true` grants every host. */
export interface PermissionSet {
  read: string[];
  write: string[];
  net: string[] | true;
  env: string[];
  sys: string[];
  run: string[];
  /** A TCP host other than loopback is needed (then `net: true` is not fenced to loopback). */
  tcpBeyondLoopback?: boolean;
}

/** Every IPv4 address but 127.0.0.0/8, as CIDRs (Deno's --deny-net takes IPv4 CIDRs). */
export const NON_LOOPBACK_IPV4: readonly string[] = [
  "0.0.0.0/2",
  "64.0.0.0/3",
  "96.0.0.0/4",
  "112.0.0.0/5",
  "120.0.0.0/6",
  "124.0.0.0/7",
  "126.0.0.0/8",
  "128.0.0.0/1",
];

const LOOPBACK = /^(127\.|localhost$|\[?::1\]?$)/;

/** The permissions covering `needs`, plus the environment and system information every command reads. */
export function permissionSet(needs: readonly Need[]): PermissionSet {
  const set: PermissionSet = {
    read: [],
    write: [],
    net: [],
    env: [...ENV_VARS],
    sys: [...SYS_INFO],
    run: [],
  };
  for (const access of needs.flatMap(accessesOf)) addAccess(set, access);
  for (const need of needs) {
    if (need.kind === "tcp" && !LOOPBACK.test(need.host)) set.tcpBeyondLoopback = true;
  }
  return set;
}

/** Adds one access to a set (kept free of duplicates). */
export function addAccess(set: PermissionSet, access: Access): void {
  if (access.name === "net") {
    if (access.host === undefined) set.net = true;
    else if (set.net !== true && !set.net.includes(access.host)) set.net.push(access.host);
    return;
  }
  if (access.name === "run") {
    if (!set.run.includes(access.command)) set.run.push(access.command);
    return;
  }
  if (access.name === "sys") {
    if (!set.sys.includes(access.info)) set.sys.push(access.info);
    return;
  }
  const list = set[access.name];
  if (!list.includes(access.path)) list.push(access.path);
}

/**
 * `--allow-*` flags granting exactly `set` (never `-A`), with `--no-prompt`. Deno's lists
 * are comma-separated, so a path with a comma cannot be granted: RangeError naming it.
 */
export function permissionFlags(set: PermissionSet): string[] {
  const flags = ["--no-prompt"];
  const list = (kind: string, values: readonly string[]) => {
    if (values.length === 0) return;
    const comma = values.find((v) => v.includes(","));
    if (comma !== undefined) {
      throw new RangeError(
        `${
          JSON.stringify(comma)
        } contains a comma, which Deno's --allow-${kind} list cannot express; use a path without one`,
      );
    }
    flags.push(`--allow-${kind}=${values.join(",")}`);
  };
  list("read", set.read);
  list("write", set.write);
  if (set.net === true) {
    // Any host: only because unix sockets named at run time (shims') cannot be granted by
    // directory. Keep TCP to loopback (IPv4; the unit's IPAddressDeny covers IPv6), unless a
    // TCP listener elsewhere is needed.
    flags.push("--allow-net");
    if (!set.tcpBeyondLoopback) flags.push(`--deny-net=${NON_LOOPBACK_IPV4.join(",")}`);
  } else list("net", set.net);
  list("env", set.env);
  list("sys", set.sys);
  list("run", set.run);
  return flags;
}

/** The descriptor `Deno.permissions.query` takes for one access. */
export function descriptorOf(access: Access): Deno.PermissionDescriptor {
  switch (access.name) {
    case "net":
      return access.host === undefined ? { name: "net" } : { name: "net", host: access.host };
    case "run":
      return { name: "run", command: access.command };
    case "sys":
      return { name: "sys", kind: access.info as Deno.SysPermissionDescriptor["kind"] };
    default:
      return { name: access.name, path: access.path };
  }
}
