/**
 * The log sink (src/log.ts): info and debug lines are written together shortly after the
 * current turn, in order with warnings and errors, which are written at once; flushLogs()
 * writes what is pending (serve calls it before the process exits).
 */
import { assertEquals } from "../harness/assert.ts";

const LOG = new URL("../../src/log.ts", import.meta.url).href;

/** Runs `body` in a process with JSON logging on stderr; returns its stderr lines. */
async function stderrOf(body: string): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "psd-log-" });
  try {
    const script = `${dir}/script.ts`;
    await Deno.writeTextFile(
      script,
      `import { flushLogs, logger, setupLogging } from ${JSON.stringify(LOG)};
await setupLogging({ level: "debug", json: true });
const log = logger("test");
const mark = (text: string) => Deno.stderr.writeSync(new TextEncoder().encode(text + "\\n"));
${body}`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", new URL("../../deno.json", import.meta.url).pathname, script],
      stdout: "null",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(out.stderr).split("\n").filter(Boolean).map((line) => {
      try {
        return `${JSON.parse(line).level} ${JSON.parse(line).message}`;
      } catch {
        return line;
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("info lines are written after the current turn, warnings at once and after the info before them", async () => {
  // (the batch waits LOG_BATCH_MS, 10 ms; the script sleeps 100)
  assertEquals(
    await stderrOf(`
log.info("one");
log.debug("two");
mark("same turn");
log.warn("three");
mark("after the warning");
log.info("four");
await new Promise((r) => setTimeout(r, 100));
mark("next turn");
`),
    [
      "same turn",
      "INFO one",
      "DEBUG two",
      "WARNING three",
      "after the warning",
      "INFO four",
      "next turn",
    ],
  );
});

Deno.test("flushLogs writes the pending lines before an exit", async () => {
  assertEquals(
    await stderrOf(`
for (let i = 0; i < 100; i++) log.info("line {i}", { i });
flushLogs();
Deno.exit(0);
`),
    Array.from({ length: 100 }, (_, i) => `INFO line ${i}`),
  );
});
