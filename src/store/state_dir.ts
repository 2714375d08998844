/**
 * The state directory's safety: the KV file is 0600 in a 0700 directory, and a symlinked
 * or world-writable location is refused (anyone able to swap it could feed the agent a
 * forged store).
 *
 * @module
 */
import { join } from "node:path";
import { lstatOrNull } from "../fs.ts";
import { STATE_FILE } from "./kv_store.ts";

/** A state location the agent refuses; the message says what is wrong and what to do. */
export class UnsafeStateError extends Error {
  override name = "UnsafeStateError";
}

/**
 * Creates or checks `dir` and its KV file; returns the file's path. Modes are tightened
 * (directory 0700, file 0600); symlinks and world-writable locations are refused.
 */
export async function prepareStateDir(dir: string): Promise<string> {
  const info = await lstatOrNull(dir);
  if (info === null) {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } else if (info.isSymlink) {
    throw new UnsafeStateError(
      `state directory ${dir} is a symlink; refusing it: point --state at the real directory`,
    );
  } else if (!info.isDirectory) {
    throw new UnsafeStateError(`state directory ${dir} exists and is not a directory`);
  } else if ((info.mode ?? 0) & 0o002) {
    throw new UnsafeStateError(
      `state directory ${dir} is world-writable; refusing it: use a directory only the agent can write (chmod 700)`,
    );
  }
  await Deno.chmod(dir, 0o700);
  const file = join(dir, STATE_FILE);
  const fileInfo = await lstatOrNull(file);
  if (fileInfo === null) {
    // An empty file is a new SQLite database; creating it first fixes its mode (SQLite
    // gives its -wal and -shm files the same one).
    await Deno.writeFile(file, new Uint8Array(), { mode: 0o600, createNew: true });
  } else if (fileInfo.isSymlink || !fileInfo.isFile) {
    throw new UnsafeStateError(`state file ${file} is not a regular file; refusing it`);
  } else {
    await Deno.chmod(file, 0o600);
  }
  return file;
}
