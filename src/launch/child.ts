/**
 * Runs the agent as a child process in the launcher's place: stdio inherited, SIGTERM,
 * SIGINT and SIGHUP forwarded, its exit status passed through (128 + N after signal N).
 *
 * @module
 */

export const FORWARDED_SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP"] as const;

/**
 * Spawns `command args` (the launcher's environment plus `env`), forwards signals until
 * it exits; resolves with its exit code.
 */
export async function runChild(
  command: string,
  args: string[],
  env?: Record<string, string>,
): Promise<number> {
  let child: Deno.ChildProcess | undefined;
  const pending: Deno.Signal[] = [];
  const forward = (signal: Deno.Signal) => {
    if (!child) return void pending.push(signal);
    try {
      child.kill(signal);
    } catch {
      // Already exited: its status is on its way.
    }
  };
  // Listening before the spawn: a signal in between must not kill the launcher alone.
  const listeners = FORWARDED_SIGNALS.map((signal) => [signal, () => forward(signal)] as const);
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);
  try {
    child = new Deno.Command(command, {
      args,
      env,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    for (const signal of pending.splice(0)) forward(signal);
    // Deno reports a child killed by signal N as code 128 + N, as a shell does.
    return (await child.status).code;
  } finally {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  }
}
