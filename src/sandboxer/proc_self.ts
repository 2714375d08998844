/**
 * Reads a file of the agent's own /proc entry. Deno refuses /proc/self/* (and the agent's
 * own /proc/PID) to anything but --allow-all, so the file is read by cat(1), a child of
 * the agent: what the sandboxer reads there — the kernel's seccomp support, the user
 * namespace, the OOM score, the mount table — a child shares with its parent.
 *
 * @module
 */

/** The text of /proc/self/NAME as the agent would see it; undefined when unreadable. */
export async function readProcSelf(name: string): Promise<string | undefined> {
  if (!/^[a-z_]+$/.test(name)) throw new RangeError(`invalid /proc/self entry ${name}`);
  try {
    const out = await new Deno.Command("cat", {
      args: [`/proc/self/${name}`],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : undefined;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}
