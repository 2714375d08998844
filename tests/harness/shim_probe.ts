/**
 * A probe run as its own Deno process under chosen permission flags: finds the shim
 * of NAMESPACE/ID in STATE_DIR and asks its State. Prints {"pid":…} on success, or
 * {"error":NAME,"message":…}; used to measure which grants reach shim sockets.
 *
 * Usage: deno run FLAGS tests/harness/shim_probe.ts STATE_DIR NAMESPACE ID
 *
 * @module
 */
import { StateDirShimLocator } from "../../src/shim/locator.ts";
import { dialShim } from "../../src/shim/task_client.ts";

const [stateDir, namespace, id] = Deno.args;
try {
  const client = await dialShim(await new StateDirShimLocator(stateDir).locate(namespace, id));
  try {
    console.log(JSON.stringify({ pid: (await client.state(id, { timeoutMs: 5_000 })).pid }));
  } finally {
    await client[Symbol.asyncDispose]();
  }
} catch (err) {
  const e = err as Error;
  console.log(JSON.stringify({ error: e.name, message: e.message }));
}
