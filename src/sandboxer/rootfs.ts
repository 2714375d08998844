/**
 * Reading the image's user files (/etc/passwd, /etc/group) from a sandbox's prepared
 * snapshot: mounted read-only for the moment of the read, as containerd's client does
 * when a user name must be resolved.
 *
 * @module
 */
import { join, posix } from "node:path";
import type { Mount } from "../containerd/types.ts";
import type { HostMounts } from "./mounts.ts";
import type { UserFiles } from "./user.ts";

/** containerd's bound on a user file it parses. */
const MAX_USER_FILE_BYTES = 1024 * 1024;
const MAX_SYMLINKS = 40;

/**
 * The host path of `path` inside `root`, following symlinks as if `root` were "/"
 * (an absolute link or ".." never leaves it); undefined when something is missing.
 */
export async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  const pending = posix.normalize(path).split("/").filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === "..") {
      done.pop();
      continue;
    }
    if (part === ".") continue;
    const host = join(root, ...done, part);
    let info: Deno.FileInfo;
    try {
      info = await Deno.lstat(host);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
        return undefined;
      }
      throw err;
    }
    if (!info.isSymlink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) return undefined;
    const target = await Deno.readLink(host);
    if (target.startsWith("/")) done.length = 0;
    pending.unshift(...target.split("/").filter(Boolean));
  }
  return join(root, ...done);
}

async function readBounded(path: string | undefined): Promise<string | undefined> {
  if (path === undefined) return undefined;
  const info = await Deno.stat(path);
  if (!info.isFile) return undefined;
  if (info.size > MAX_USER_FILE_BYTES) {
    throw new RangeError(`${path} is ${info.size} bytes, more than ${MAX_USER_FILE_BYTES}`);
  }
  return await Deno.readTextFile(path);
}

/** Reads /etc/passwd and /etc/group of a rootfs already mounted (or unpacked) at `root`. */
export async function readUserFiles(root: string): Promise<UserFiles> {
  return {
    passwd: await readBounded(await resolveInRoot(root, "/etc/passwd")),
    group: await readBounded(await resolveInRoot(root, "/etc/group")),
  };
}

/**
 * Mounts a snapshot's `mounts` read-only at `dir` (created, then removed), reads the
 * user files and unmounts again.
 */
export async function readSnapshotUserFiles(
  snapshot: Mount[],
  dir: string,
  mounts: HostMounts,
): Promise<UserFiles> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  try {
    for (const m of snapshot) {
      // Read-only: a read must not change the rootfs (nor make the kernel sync it).
      const options = [...m.options.filter((o) => o !== "rw"), "ro"];
      await mounts.mount({
        // mount(8) takes a bind mount as options ("rbind") of type "none".
        type: m.type === "bind" ? "none" : m.type,
        source: m.source,
        target: join(dir, m.target || "."),
        options,
      });
    }
    return await readUserFiles(dir);
  } finally {
    await mounts.unmountAll(dir);
    await Deno.remove(dir).catch(() => {});
  }
}
