/**
 * What an operator relies on, against a real containerd: Prometheus metrics, the health
 * probe, the watch stream, retention of removed sandboxes, and the packaging (systemd
 * unit, installer) and a CLI that needs nothing from the source tree's working directory.
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import { AgentProcess, cliArgs, killCli, runCli } from "./harness/agent.ts";
import { PrivateContainerd } from "./harness/containerd.ts";
import { Containers, importImages, uniqueId } from "./harness/containers.ts";
import { eventually, run } from "./harness/process.ts";

const NS = "psd-ops";
const root = new URL("..", import.meta.url).pathname;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text exposition strictly enough to catch malformed output. */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
    if (m) {
      if (m[1] === "TYPE") {
        assert(["counter", "gauge", "histogram"].includes(m[3]), line);
        types.set(m[2], m[3]);
      } else helps.add(m[2]);
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.e+]+|\+Inf|NaN)$/.exec(line);
    assert(m, `malformed exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").split(",").filter(Boolean)) {
      const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$/.exec(l);
      assert(lm, `malformed label in ${line}`);
      labels[lm[1]] = lm[2];
    }
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  for (const s of samples) {
    const family = s.name.replace(/_(bucket|sum|count)$/, "");
    assert(types.has(s.name) || types.get(family) === "histogram", `${s.name} has a TYPE line`);
    assert(helps.has(types.has(s.name) ? s.name : family), `${s.name} has a HELP line`);
  }
  for (const [name, type] of types) {
    assert(name.startsWith("podsandboxd_"), `${name}: podsandboxd_ prefix`);
    if (type === "counter") assert(name.endsWith("_total"), `${name}: counters end in _total`);
    if (type === "histogram") assert(name.endsWith("_seconds"), `${name}: durations in seconds`);
  }
  return { types, samples };
}

function value(
  samples: Sample[],
  name: string,
  labels: Record<string, string> = {},
): number | undefined {
  return samples.find((s) =>
    s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
  )?.value;
}

Deno.test("operations: metrics, health, watch and retention on a real containerd", async (t) => {
  const containerd = await PrivateContainerd.start();
  const dir = await Deno.makeTempDir({ prefix: "psd-o-" });
  const c = new Containers(containerd, NS);
  const port = freePort();
  let agent: AgentProcess | undefined;
  let watcher: Deno.ChildProcess | undefined;
  try {
    await importImages(containerd, NS);
    agent = await AgentProcess.start({
      containerdSocket: containerd.socket,
      dir,
      namespace: NS,
      args: ["--metrics-address", `127.0.0.1:${port}`, "--retention", "1s"],
    });
    const a = agent;

    // A watcher from the start, as a script would run it.
    watcher = new Deno.Command(Deno.execPath(), {
      args: cliArgs(["watch", "--json", "--snapshot", "--socket", a.socket, "--namespace", NS]),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const watched: Array<Record<string, unknown>> = [];
    const watching = (async () => {
      let buffer = "";
      for await (const chunk of watcher!.stdout.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          watched.push(JSON.parse(buffer.slice(0, nl)));
          buffer = buffer.slice(nl + 1);
        }
      }
    })();
    await eventually("the watcher to connect", async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return value(parseExposition(text).samples, "podsandboxd_watchers") === 1;
    });

    const id = uniqueId("ops");
    await t.step("a sandbox's life shows in watch, metrics and health", async () => {
      await c.run(id, ["sleep", "100000"]);
      const waiting = a.cli("wait", id, "--json", "--timeout", "60s");
      await a.waitForLog((l) => l.message === `waiting for sandbox ${NS}/${id}`, 20_000);
      await c.kill(id);
      assertEquals(JSON.parse((await waiting).stdout).exitStatus, 137);
      await eventually(
        "the exit in the watch stream",
        () => watched.some((w) => w.id === id && w.event === "changed" && w.exitStatus === 137),
      );
      assert(watched.some((w) => w.id === id && w.state === "SANDBOX_READY"), "READY was streamed");

      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      assertEquals(res.status, 200);
      assertMatch(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
      const { types, samples } = parseExposition(await res.text());
      for (
        const name of [
          "podsandboxd_sandboxes",
          "podsandboxd_exits_recorded_total",
          "podsandboxd_exit_handling_seconds",
          "podsandboxd_containerd_connects_total",
          "podsandboxd_resyncs_total",
          "podsandboxd_pending_retries",
          "podsandboxd_waiters",
          "podsandboxd_store_commit_seconds",
          "podsandboxd_containerd_connected",
        ]
      ) assert(types.has(name), `${name} is exposed`);
      // From containerd's TaskExit or the shim's answer, whichever came first.
      const fromEvents = (value(samples, "podsandboxd_exits_recorded_total", { source: "event" }) ??
        0) + (value(samples, "podsandboxd_exits_recorded_total", { source: "shim" }) ?? 0);
      assert(fromEvents >= 1, `exits recorded from events or shims: ${fromEvents}`);
      assert((value(samples, "podsandboxd_exit_handling_seconds_count") ?? 0) >= 1);
      assert((value(samples, "podsandboxd_sandboxes", { state: "notready" }) ?? 0) >= 1);
      assertEquals(value(samples, "podsandboxd_containerd_connected"), 1);
      assertEquals(value(samples, "podsandboxd_waiters"), 0);
      assert(
        (value(samples, "podsandboxd_containerd_calls_total", { method: "events.Subscribe" }) ??
          0) >= 1,
      );
      // The default mode never deletes or kills a task.
      assertEquals(
        value(samples, "podsandboxd_containerd_calls_total", { method: "tasks.Delete" }),
        undefined,
      );
      assertEquals(
        value(samples, "podsandboxd_containerd_calls_total", { method: "tasks.Kill" }),
        undefined,
      );
      assertEquals((await fetch(`http://127.0.0.1:${port}/other`)).status, 404);
    });

    await t.step(
      "health: SERVING while connected, NOT_SERVING while containerd is away",
      async () => {
        const ok = await a.cli("health", "--json");
        assertEquals([ok.code, JSON.parse(ok.stdout).status], [0, "SERVING"]);
        await containerd.kill("SIGKILL");
        await a.waitForLog((l) => l.message?.startsWith("containerd unavailable") ?? false);
        const down = await a.cli("health");
        assertEquals([down.code, down.stdout.trim()], [1, "NOT_SERVING"]);
        await containerd.boot();
        await eventually("health to come back", async () => (await a.cli("health")).code === 0);
      },
    );

    await t.step(
      "retention: a removed sandbox's record is listed as removed, then expires",
      async () => {
        await c.remove(id);
        // Seen in the watch stream: a CLI status poll can be slower than the 1 s retention.
        const removed = await eventually(
          "the removal to be recorded",
          () => watched.find((w) => w.id === id && w.event === "changed" && w.deletedAt),
        );
        assertEquals(removed.exitStatus, 137);
        await eventually(
          "the record to expire (--retention 1s)",
          async () => (await a.cli("status", id)).code === 1,
        );
        await eventually(
          "the expiry in the watch stream",
          () => watched.some((w) => w.id === id && w.event === "removed"),
        );
      },
    );

    watcher.kill("SIGTERM");
    assertEquals((await watcher.status).code, 0);
    await watching;
    await watcher.stderr.cancel();
    watcher = undefined;
  } finally {
    if (watcher) {
      killCli(watcher.pid);
      await watcher.status;
    }
    await agent?.stop();
    c.close();
    await containerd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("the CLI needs nothing from its working directory (as a compiled binary would)", async () => {
  for (const args of [["version", "--json"], ["serve", "--help"], ["config", "--json"]]) {
    const res = await runCli(args, { cwd: "/" });
    assertEquals(res.code, 0, `${args.join(" ")}: ${res.stderr}`);
  }
});

Deno.test("install.sh --destdir stages binary, unit, config and group; again changes nothing; the unit verifies", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-inst-" });
  try {
    const binary = join(dir, "podsandboxd-build");
    await Deno.writeTextFile(binary, "#!/bin/sh\nexit 0\n");
    await Deno.chmod(binary, 0o755);
    const dest = join(dir, "root");
    const install = () =>
      run(join(root, "scripts/install.sh"), [
        "--destdir",
        dest,
        "--prefix",
        "/usr/local",
        "--binary",
        binary,
      ]);
    await install();
    const mode = async (p: string) => (await Deno.stat(join(dest, p))).mode! & 0o777;
    assertEquals(await mode("usr/local/bin/podsandboxd"), 0o755);
    assertEquals(await mode("etc/systemd/system/podsandboxd.service"), 0o644);
    assertEquals(await mode("etc/podsandboxd/config.toml"), 0o644);
    assertMatch(
      await Deno.readTextFile(join(dest, "usr/lib/sysusers.d/podsandboxd.conf")),
      /^g podsandboxd -$/m,
    );
    const unit = await Deno.readTextFile(join(dest, "etc/systemd/system/podsandboxd.service"));
    assertMatch(unit, /^ExecStart=\/usr\/local\/bin\/podsandboxd serve /m);

    // The operator's config survives a re-install.
    await Deno.writeTextFile(join(dest, "etc/podsandboxd/config.toml"), 'reap = "never"\n');
    const again = await install();
    assertMatch(again.stdout, /keeping the existing/);
    assertEquals(
      await Deno.readTextFile(join(dest, "etc/podsandboxd/config.toml")),
      'reap = "never"\n',
    );

    // systemd-analyze verify needs ExecStart to exist: point it at the staged binary.
    const checked = join(dir, "podsandboxd.service");
    await Deno.writeTextFile(
      checked,
      unit.replace(
        /^ExecStart=\/usr\/local\/bin\/podsandboxd/m,
        `ExecStart=${dest}/usr/local/bin/podsandboxd`,
      ),
    );
    const verify = await run("systemd-analyze", ["verify", checked], { allowFailure: true });
    assertEquals(verify.code, 0, verify.stderr);
    assertEquals(verify.stderr.trim(), "", "no warnings");

    const missing = await run(join(root, "scripts/install.sh"), [
      "--destdir",
      dest,
      "--binary",
      join(dir, "nope"),
    ], {
      allowFailure: true,
    });
    assertEquals(missing.code, 1);
    assertMatch(
      missing.stderr,
      /no executable at .*nope: build it with \.\/scripts\/deno task compile/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
