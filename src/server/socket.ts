/**
 * Preparing the agent's unix socket path: never clobber a live agent or a file that is
 * not a socket; replace a stale socket left by a crash.
 *
 * @module
 */
import { dirname } from "node:path";

/** Throws naming the path when it cannot be used; removes a stale socket. */
export async function prepareSocketPath(path: string): Promise<void> {
  await Deno.mkdir(dirname(path), { recursive: true, mode: 0o755 });
  let info: Deno.FileInfo;
  try {
    info = await Deno.lstat(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (!info.isSocket) {
    throw new Error(`${path} exists and is not a socket; refusing to replace it`);
  }
  if (await answers(path)) {
    throw new Error(`another process is already serving on ${path}; is podsandboxd running?`);
  }
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
