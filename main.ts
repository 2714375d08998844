/**
 * podsandboxd: records every pod sandbox exit from containerd and answers wait/status
 * on a unix socket. Run `podsandboxd --help`.
 *
 * @module
 */
import { main } from "./src/cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
