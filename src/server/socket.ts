/**
 * The agent's socket path: never follow a symlink, never clobber a live agent or a file
 * that is not a socket, replace a stale socket left by a crash; the socket ends up 0660,
 * owned by root and the socket group, in a directory that is not world-writable.
 *
 * @module
 */
import { dirname } from "node:path";
import { lstatOrNull } from "../fs.ts";
import { logger } from "../log.ts";

const log = logger("server");

/** The group whose members may use the socket, when --socket-group is not given. */
export const DEFAULT_SOCKET_GROUP = "podsandboxd";

/** A socket path the agent refuses; the message names the path and the reason. */
export class UnsafeSocketError extends Error {
  override name = "UnsafeSocketError";
}

/** Throws naming the path when it cannot be used safely; removes a stale socket. */
export async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  let dirInfo = await lstatOrNull(dir);
  if (dirInfo === null) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o750 });
    dirInfo = await Deno.lstat(dir);
  }
  if (dirInfo.isSymlink) {
    throw new UnsafeSocketError(`socket directory ${dir} is a symlink; refusing to serve in it`);
  }
  if (!dirInfo.isDirectory) throw new UnsafeSocketError(`${dir} is not a directory`);
  if ((dirInfo.mode ?? 0) & 0o002) {
    throw new UnsafeSocketError(
      `socket directory ${dir} is world-writable: anyone could replace the socket; ` +
        "use a directory only root can write (e.g. /run/podsandboxd)",
    );
  }
  const info = await lstatOrNull(path);
  if (info === null) return;
  if (info.isSymlink) throw new UnsafeSocketError(`${path} is a symlink; refusing to replace it`);
  if (!info.isSocket) {
    throw new UnsafeSocketError(`${path} exists and is not a socket; refusing to replace it`);
  }
  if (await answers(path)) {
    throw new UnsafeSocketError(
      `another process is already serving on ${path}; is podsandboxd running?`,
    );
  }
  log.info("replacing the stale socket {path}", { path });
  await Deno.remove(path);
}

async function answers(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** The gid of a group name (or numeric gid) from /etc/group; undefined when unknown. */
export async function lookupGroup(name: string): Promise<number | undefined> {
  if (/^\d+$/.test(name)) return Number(name);
  let text: string;
  try {
    text = await Deno.readTextFile("/etc/group");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const [group, , gid] = line.split(":");
    if (group === name && /^\d+$/.test(gid ?? "")) return Number(gid);
  }
  return undefined;
}

/**
 * Sets the socket's mode and group. With the default group absent, the socket keeps
 * the process's group (a warning says how to create it); a group named explicitly must
 * exist.
 */
export async function secureSocket(
  path: string,
  options: { mode: number; group?: string },
): Promise<void> {
  await Deno.chmod(path, options.mode);
  const name = options.group ?? DEFAULT_SOCKET_GROUP;
  const gid = await lookupGroup(name);
  if (gid === undefined) {
    if (options.group !== undefined) {
      throw new UnsafeSocketError(
        `socket group ${
          JSON.stringify(name)
        } does not exist (--socket-group); create it or name another`,
      );
    }
    log.warn(
      "group {group} does not exist: only root can use {path}; create it (groupadd --system {group}) to let its members query the agent",
      { group: name, path },
    );
    return;
  }
  if ((await Deno.lstat(path)).gid !== gid) await Deno.chown(path, null, gid);
}
