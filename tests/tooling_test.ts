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

Deno.test("compile stamps the build's commit into BUILD_INFO, which `version` prints", async () => {
  const { stampBuildInfo } = await import("../scripts/build_info.ts");
  const source = await Deno.readTextFile(new URL("../src/build_info.ts", import.meta.url));
  const dir = await Deno.makeTempDir({ prefix: "psd-build-" });
  try {
    const file = `${dir}/build_info.ts`;
    await Deno.writeTextFile(
      file,
      stampBuildInfo(source, { commit: "abc123", builtAt: "2026-01-01T00:00:00Z" }),
    );
    const stamped = await import(`file://${file}`);
    assertEquals(stamped.BUILD_INFO, { commit: "abc123", builtAt: "2026-01-01T00:00:00Z" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // Run from source, the commit is honestly unknown.
  const res = await run(Deno.execPath(), ["run", "-A", `${root}main.ts`, "version", "--json"]);
  assertEquals(JSON.parse(res.stdout).commit, "unknown");
});

Deno.test("fetching a containerd version without network fails naming the command to run", async () => {
  const cache = await Deno.makeTempDir({ prefix: "psd-cdv-" });
  try {
    const res = await run(`${root}scripts/containerd-versions.sh`, ["2.1"], {
      allowFailure: true,
      // Nothing listens on port 9 of the loopback: the mirror is unreachable.
      env: {
        PODSANDBOXD_CONTAINERD_CACHE: cache,
        PODSANDBOXD_DEBIAN_MIRROR: "http://127.0.0.1:9/debian",
      },
    });
    assertEquals(res.code, 1, res.stderr);
    assertMatch(
      res.stderr,
      /could not read Debian's package lists \(network\?\): the command was\n {2}apt-get .* update\n/,
    );
    assertMatch(res.stderr, /run again: scripts\/containerd-versions\.sh 2\.1/);
    // Nothing half-unpacked is left to be mistaken for a build.
    assertEquals((await Array.fromAsync(Deno.readDir(cache))).map((e) => e.name).sort(), [
      ".lock",
      "apt",
    ]);
  } finally {
    await Deno.remove(cache, { recursive: true });
  }
});
