/**
 * `deno task podsandboxd …` / `deno task start`: runs the CLI with exactly the Deno
 * permissions its configuration needs (src/launch/launch.ts).
 *
 * @module
 */
import { launch } from "./src/launch/launch.ts";

if (import.meta.main) {
  Deno.exit(await launch(Deno.args));
}
