/**
 * The project's own tooling: generated docs are current, the compile task fails with
 * one clear message when the denort runtime cannot be had.
 */
import { assertEquals, assertMatch } from "./harness/assert.ts";
import { run } from "./harness/process.ts";

const root = new URL("..", import.meta.url).pathname;

Deno.test("the README's option table matches the serve option definitions", async () => {
  const res = await run(Deno.execPath(), ["run", "-A", `${root}scripts/docs.ts`, "--check"], {
    allowFailure: true,
  });
  assertEquals(res.code, 0, res.stderr);
});

Deno.test("deno task compile with a missing DENORT_BIN fails with a clear message", async () => {
  const res = await run(Deno.execPath(), [
    "task",
    "--cwd",
    root,
    "compile",
    "--output",
    "/nonexistent/x",
  ], {
    allowFailure: true,
    env: { DENORT_BIN: "/nonexistent/denort" },
  });
  assertEquals(res.code, 1);
  assertMatch(
    res.stderr,
    /compile: DENORT_BIN=\/nonexistent\/denort does not exist; point it at the denort \d+\.\d+\.\d+ binary/,
  );
});
