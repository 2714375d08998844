/**
 * The project's own tooling: generated docs and deno.json's launcher tasks are current,
 * the compile task bakes its grants and fails with one clear message when the denort
 * runtime cannot be had.
 */
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import { run } from "./harness/process.ts";

const root = new URL("..", import.meta.url).pathname;

Deno.test("the README's tables and deno.json's launcher tasks match the code; deno.json has no permission set", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${root}deno.json`));
  assertEquals(config.permissions, undefined, "permission sets print an experimental warning");
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

/** The JSON metadata `deno compile` embeds (it opens with {"argv":), parsed. */
function embeddedMetadata(binary: string) {
  const at = binary.lastIndexOf('{"argv":');
  assert(at >= 0, "no compile metadata in the binary");
  let depth = 0;
  let inString = false;
  for (let i = at; i < binary.length; i++) {
    const ch = binary[i];
    if (inString) {
      if (ch === "\\") i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === "{") depth++;
    else if (ch === "}" && --depth === 0) return JSON.parse(binary.slice(at, i + 1));
  }
  throw new Error("unterminated compile metadata");
}

Deno.test("deno task compile bakes the distributions' sockets and each --grant into the binary", async () => {
  // No denort here: Deno itself stands in as the runtime. The binary it makes does not
  // run, but compile embeds the same metadata, permissions included.
  const dir = await Deno.makeTempDir({ prefix: "psd-compile-" });
  try {
    const output = `${dir}/podsandboxd`;
    const res = await run(Deno.execPath(), [
      "task",
      "--cwd",
      root,
      "compile",
      "--output",
      output,
      "--grant",
      "/srv/site/containerd.sock",
      "--grant",
      "/srv/site/state",
    ], { allowFailure: true, env: { DENORT_BIN: Deno.execPath() } });
    assertEquals(res.code, 0, res.stderr);
    const binary = await Deno.readFile(output);
    const permissions = embeddedMetadata(new TextDecoder("latin1").decode(binary)).permissions;
    for (
      const socket of [
        "/run/containerd/containerd.sock",
        "/run/k3s/containerd/containerd.sock",
        "/var/snap/microk8s/common/run/containerd.sock",
        "/run/docker/containerd/containerd.sock",
        "/var/run/k3s/containerd/containerd.sock",
        "/srv/site/containerd.sock",
      ]
    ) {
      assert(permissions.allow_read.includes(socket), socket);
      assert(permissions.allow_write.includes(socket), socket);
    }
    // Net to any host (shims' sockets are named at run time), TCP fenced to loopback.
    assertEquals(permissions.allow_net, [], "an empty list: any host");
    assert(
      permissions.deny_net.includes("0.0.0.0/2") && permissions.deny_net.includes("128.0.0.0/1"),
    );
    assert(permissions.allow_write.includes("/srv/site/state"));
    assert(!permissions.allow_write.includes("/etc/podsandboxd"));
    assertEquals(permissions.allow_run, null, "the binary runs nothing");
    assertEquals(permissions.prompt, false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
