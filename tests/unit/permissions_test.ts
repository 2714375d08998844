/**
 * Deno permissions derived from the configuration (src/permissions): the launcher's
 * flags, the compiled binary's baked grants and `--grant`, the pre-check's fix, and the
 * launcher's plan for each command.
 */
import { join } from "node:path";
import { COMMANDS } from "../../src/cli/main.ts";
import { missingPermissions, permissionProblem } from "../../src/cli/preflight.ts";
import {
  DETECTED_ADDRESS_ENV,
  type LoadedServeConfig,
  loadServeConfig,
} from "../../src/config/load.ts";
import { CONTAINERD_SOCKET_CANDIDATES } from "../../src/config/detect.ts";
import { CLIENT_COMMANDS, CONFIG_COMMANDS, planLaunch } from "../../src/launch/plan.ts";
import {
  bakedNeeds,
  bakedSandboxerNeeds,
  compileArgs,
  compilePermissionSet,
  grantNeeds,
} from "../../src/permissions/compile.ts";
import {
  descriptorOf,
  permissionFlags,
  type PermissionSet,
  permissionSet,
} from "../../src/permissions/flags.ts";
import { accessesOf, clientNeeds, type Need, serveNeeds } from "../../src/permissions/needs.ts";
import { assert, assertEquals, assertThrows } from "../harness/assert.ts";

const noEnv = (_: string) => undefined;

/** A loaded configuration for `flags`, with an empty config file and the given candidates. */
function loaded(
  flags: Record<string, string | string[]>,
  candidates: readonly string[] = [],
): Promise<LoadedServeConfig> {
  return loadServeConfig({ config: "/dev/null", ...flags }, noEnv, { candidates });
}

/** Whether `set` grants `d`, as Deno decides it: paths by prefix, unix sockets exactly. */
function grants(set: PermissionSet, d: Deno.PermissionDescriptor): boolean {
  const under = (path: string, granted: string) =>
    path === granted || path.startsWith(granted.endsWith("/") ? granted : `${granted}/`);
  if (d.name === "run") return set.run.includes(String(d.command));
  if (d.name === "sys") return set.sys.includes(String(d.kind));
  if (d.name === "read" || d.name === "write") {
    return set[d.name].some((g) => under(String(d.path), g));
  }
  if (d.name === "net") {
    // Any host, fenced to loopback for TCP unless a TCP host beyond it is needed.
    if (set.net === true) {
      return set.tcpBeyondLoopback || d.host === undefined || d.host.startsWith("unix:") ||
        /^(127\.|localhost|\[::1\])/.test(d.host);
    }
    if (d.host === undefined) return false;
    const host = d.host;
    return set.net.some((g) => g === host || (!g.startsWith("unix:") && host.startsWith(`${g}:`)));
  }
  return false;
}

const queryOf = (set: PermissionSet) => (d: Deno.PermissionDescriptor) =>
  grants(set, d) ? "granted" as const : "prompt" as const;

function flagValues(flags: string[], kind: string): string[] {
  const flag = flags.find((f) => f.startsWith(`--allow-${kind}=`));
  return flag ? flag.slice(`--allow-${kind}=`.length).split(",") : [];
}

Deno.test("the flags for a private layout grant exactly its paths: state, socket directories, containerd's socket, the config file", async () => {
  const config = await loaded({
    state: "/srv/psd/state",
    socket: "/srv/psd/run/agent.sock",
    address: "/srv/containerd/containerd.sock",
    "metrics-address": "unix:/srv/metrics/m.sock",
    "shim-wait": "off",
  });
  const flags = permissionFlags(permissionSet(serveNeeds(config)));
  assert(
    !flags.some((f) => /^-A$|^--allow-all|^--allow-(read|write|net|run|ffi)$/.test(f)),
    `${flags}`,
  );
  assertEquals(flagValues(flags, "write").sort(), [
    "/srv/containerd/containerd.sock",
    "/srv/metrics",
    "/srv/psd/run",
    "/srv/psd/state",
  ]);
  assertEquals(
    flagValues(flags, "read").sort(),
    [
      "/etc/group",
      config.fileLookedFor,
      "/srv/containerd/containerd.sock",
      "/srv/metrics",
      "/srv/psd/run",
      "/srv/psd/state",
    ].sort(),
  );
  assertEquals(flagValues(flags, "net").sort(), [
    "unix:/srv/containerd/containerd.sock",
    "unix:/srv/metrics/m.sock",
    "unix:/srv/psd/run/agent.sock",
  ]);
  assertEquals(flagValues(flags, "sys"), ["uid"]);
  assert(flagValues(flags, "env").includes("PODSANDBOXD_*"));
  assert(flags.includes("--no-prompt"));
  assert(!flags.some((f) => f.startsWith("--allow-run")), "the agent runs nothing");
});

Deno.test("metrics on TCP: net to that host and port only (IPv6 in brackets)", async () => {
  for (
    const [address, host] of [["127.0.0.1:9477", "127.0.0.1:9477"], ["[::1]:9477", "[::1]:9477"]]
  ) {
    const flags = permissionFlags(
      permissionSet(
        serveNeeds(
          await loaded({ "metrics-address": address, socket: "/s/a.sock", "shim-wait": "off" }),
        ),
      ),
    );
    assert(flagValues(flags, "net").includes(host), `${address}: ${flags}`);
  }
});

Deno.test("with no --address: the candidates are readable (detection) and the socket found is connectable", async () => {
  await using root = await socketRoot(["b.sock"]);
  const candidates = ["a.sock", "b.sock"].map((n) => join(root.path, n));
  const config = await loaded({ socket: "/s/a.sock", "shim-wait": "off" }, candidates);
  assertEquals(config.config.address, candidates[1]);
  assertEquals(config.sources.address, "detected");
  const flags = permissionFlags(permissionSet(serveNeeds(config)));
  for (const c of candidates) assert(flagValues(flags, "read").includes(c), c);
  assertEquals(flagValues(flags, "net").filter((h) => h.includes(root.path)), [
    `unix:${candidates[1]}`,
  ]);
});

Deno.test("shim wait reads containerd's task bundles and reaches the shims' sockets: any host, TCP fenced to loopback", async () => {
  const config = await loaded({
    state: "/srv/psd/state",
    socket: "/srv/psd/run/agent.sock",
    address: "/srv/containerd/containerd.sock",
    "containerd-state": "/srv/containerd/state",
  });
  const flags = permissionFlags(permissionSet(serveNeeds(config)));
  const read = flagValues(flags, "read");
  assert(read.includes("/srv/containerd/state/io.containerd.runtime.v2.task"), `${read}`);
  for (const dir of ["/run/containerd/s", "/srv/containerd/state/s"]) {
    assert(read.includes(dir) && flagValues(flags, "write").includes(dir), dir);
  }
  assert(flags.includes("--allow-net"), `${flags}`);
  const deny = flags.find((f) => f.startsWith("--deny-net="));
  assert(deny?.includes("128.0.0.0/1") && !deny.includes("127."), `${deny}`);
  // A TCP listener beyond loopback lifts the fence (it would deny it).
  const wide = await loaded({ "metrics-address": "0.0.0.0:9477", socket: "/s/a.sock" });
  assert(!permissionFlags(permissionSet(serveNeeds(wide))).some((f) => f.startsWith("--deny-net")));
  // The state directory follows a known containerd's socket; shown as detected.
  const k3s = await loaded({ address: "/run/k3s/containerd/containerd.sock" });
  assertEquals([k3s.config.containerdState, k3s.sources.containerdState], [
    "/run/k3s/containerd",
    "detected",
  ]);
  const own = await loaded({ address: "/srv/c.sock" });
  assertEquals([own.config.containerdState, own.sources.containerdState], [
    "/run/containerd",
    "default",
  ]);
});

Deno.test("a directory of sockets (shims') is one need: read/write on it, and net to any host, as Deno 2.9 cannot scope unix sockets to a directory", () => {
  const need: Need = { kind: "sockets-in", path: "/run/containerd/s", why: "--containerd-state" };
  const flags = permissionFlags(permissionSet([need]));
  assertEquals(flagValues(flags, "read"), ["/run/containerd/s"]);
  assertEquals(flagValues(flags, "write"), ["/run/containerd/s"]);
  assert(flags.includes("--allow-net"));
});

Deno.test("a path with a comma cannot be a Deno grant: RangeError naming it", () => {
  assertThrows(
    () => permissionFlags(permissionSet(clientNeeds("/srv/a,b.sock"))),
    RangeError,
    /"\/srv\/a,b\.sock" contains a comma/,
  );
});

Deno.test("compile bakes every distribution's containerd socket (and its /var/run form), the standard layout and loopback", () => {
  const set = compilePermissionSet();
  const flags = permissionFlags(set);
  // Shim wait's sockets need net to any host: read∩write is what fences unix sockets.
  assert(flags.includes("--allow-net"));
  for (const socket of CONTAINERD_SOCKET_CANDIDATES) {
    for (const path of socket.startsWith("/run/") ? [socket, `/var${socket}`] : [socket]) {
      assert(flagValues(flags, "read").includes(path), path);
      assert(flagValues(flags, "write").includes(path), path);
    }
  }
  for (
    const dir of [
      "/run/containerd/s",
      "/run/k3s/containerd/s",
      "/run/k3s/containerd/io.containerd.runtime.v2.task",
      "/var/snap/microk8s/common/run/containerd/io.containerd.runtime.v2.task",
      "/run/docker/containerd/daemon/io.containerd.runtime.v2.task",
    ]
  ) assert(flagValues(flags, "read").includes(dir), dir);
  for (const path of ["/var/lib/podsandboxd", "/run/podsandboxd", "/var/run/podsandboxd"]) {
    assert(flagValues(flags, "write").includes(path), path);
  }
  assert(flagValues(flags, "read").includes("/etc/podsandboxd"));
  assert(flagValues(flags, "read").includes("/etc/group"));
  // TCP: loopback only (metrics).
  assert(flags.some((f) => f.startsWith("--deny-net=") && f.includes("0.0.0.0/2")));
  assert(!flags.some((f) => f.startsWith("--allow-run")));
});

Deno.test("the baked grants cover serve in the standard layout with each distribution's containerd", async () => {
  const set = compilePermissionSet();
  for (const address of [...CONTAINERD_SOCKET_CANDIDATES, "/var/run/containerd/containerd.sock"]) {
    const config = await loadServeConfig({
      address,
      state: "/var/lib/podsandboxd",
      socket: "/run/podsandboxd/podsandboxd.sock",
      "metrics-address": "unix:/run/podsandboxd/metrics.sock",
    }, noEnv);
    assertEquals(missingPermissions(serveNeeds(config), queryOf(set)), [], address);
  }
  // Detection (no --address) stats every candidate.
  const detecting = await loadServeConfig({ socket: "/run/podsandboxd/podsandboxd.sock" }, noEnv, {
    candidates: CONTAINERD_SOCKET_CANDIDATES,
  });
  assertEquals(missingPermissions(serveNeeds(detecting), queryOf(set)), []);
});

Deno.test("--grant PATH adds read/write and the unix socket at PATH; HOST:PORT adds net; anything else is refused", () => {
  const flags = permissionFlags(compilePermissionSet(["/srv/psd"]));
  assert(flagValues(flags, "read").includes("/srv/psd"));
  assert(flagValues(flags, "write").includes("/srv/psd"));
  const without = permissionFlags(compilePermissionSet());
  assertEquals(flags.length, without.length, "the same kinds of flags, longer lists");
  assert(!flagValues(without, "read").includes("/srv/psd"));
  // A TCP address beyond loopback: net stays any host, no longer fenced to loopback.
  const tcp = compilePermissionSet(["10.0.0.5:9477"]);
  assert(tcp.tcpBeyondLoopback && !permissionFlags(tcp).some((f) => f.startsWith("--deny-net")));
  for (const bad of ["relative/dir", "", "a b", "host:99999"]) {
    assertThrows(() => grantNeeds(bad), RangeError, /--grant: invalid value/);
  }
});

Deno.test("compile's deno arguments: the baked flags, the output, main.ts, and no permission set", () => {
  const args = compileArgs({ root: "/src/psd", output: "/out/podsandboxd", grants: ["/srv/x"] });
  assertEquals(args.slice(0, 3), ["compile", "--config", "/src/psd/deno.json"]);
  assertEquals(args.slice(-3), ["--output", "/out/podsandboxd", "/src/psd/main.ts"]);
  assert(flagValues(args, "write").includes("/srv/x"));
  assert(!args.some((a) => a.startsWith("-P") || a === "-A"), `${args}`);
});

Deno.test("a path outside the baked grants: the pre-check names it and the compile flags that add it, and those flags suffice", async () => {
  const baked = compilePermissionSet();
  const cases: Array<[Record<string, string>, string[]]> = [
    [{ state: "/data/psd" }, ["/data/psd"]],
    // The baked net reaches any unix socket (shim wait): read/write is what is missing.
    [{ socket: "/srv/psd/agent.sock" }, ["/srv/psd"]],
    [{ address: "/srv/containerd/containerd.sock" }, ["/srv/containerd/containerd.sock"]],
    [{ "metrics-address": "unix:/srv/m/metrics.sock" }, ["/srv/m"]],
    [{ "metrics-address": "10.1.2.3:9477" }, ["10.1.2.3:9477"]],
  ];
  for (const [flags, expected] of cases) {
    const config = await loadServeConfig({
      address: "/run/containerd/containerd.sock",
      state: "/var/lib/podsandboxd",
      socket: "/run/podsandboxd/podsandboxd.sock",
      ...flags,
    }, noEnv);
    const missing = missingPermissions(serveNeeds(config), queryOf(baked));
    const message = permissionProblem(missing, true);
    const fix = `deno task compile ${expected.map((g) => `--grant ${g}`).join(" ")}`;
    assert(message.includes(fix), `${JSON.stringify(flags)}: ${message}`);
    const [option] = Object.keys(flags);
    assert(message.includes(`--${option} `), `${option} named: ${message}`);
    const rebuilt = compilePermissionSet(expected);
    assertEquals(missingPermissions(serveNeeds(config), queryOf(rebuilt)), [], fix);
  }
});

Deno.test("from source, the pre-check points at the launcher and lists the deno run flags", async () => {
  const config = await loadServeConfig(
    { state: "/data/psd", address: "/c.sock", "shim-wait": "off" },
    noEnv,
  );
  const message = permissionProblem(
    missingPermissions(serveNeeds(config), queryOf(compilePermissionSet())),
    false,
  );
  assert(message.includes("--state /data/psd: read /data/psd, write /data/psd"), message);
  assert(message.includes("deno task podsandboxd"), message);
  assert(message.includes("--allow-read=/data/psd,/c.sock"), message);
  assert(message.includes("--allow-write=/data/psd,/c.sock"), message);
});

Deno.test("every access of every need maps to a descriptor Deno can query", () => {
  // run and sys descriptors come from the sandboxer's needs.
  for (const need of [...bakedNeeds(), ...bakedSandboxerNeeds()]) {
    for (const access of accessesOf(need)) {
      const d = descriptorOf(access);
      const { state } = Deno.permissions.querySync(d);
      assert(["granted", "prompt", "denied"].includes(state), `${JSON.stringify(d)}: ${state}`);
    }
  }
});

Deno.test("the launcher plans every command: serve and config from the configuration, clients from --socket, the rest nothing", async () => {
  const names = COMMANDS.map((c) => c.name).sort();
  assertEquals([...CONFIG_COMMANDS, ...CLIENT_COMMANDS, "version"].sort(), names);
  const readable = () => true;
  const serve = await planLaunch(
    ["serve", "--state", "/p/state", "--socket", "/p/a.sock", "--address", "/p/c.sock"],
    noEnv,
    readable,
  );
  assert("needs" in serve);
  assert(serve.needs.some((n) => n.kind === "directory" && n.path === "/p/state"));
  assert(serve.needs.some((n) => n.kind === "connect" && n.path === "/p/c.sock"));
  for (const command of CLIENT_COMMANDS) {
    for (const args of [["--socket", "/p/a.sock"], ["--socket=/p/a.sock"]]) {
      const plan = await planLaunch([command, ...args, "x"], noEnv, readable);
      assertEquals(plan, { needs: clientNeeds("/p/a.sock") }, `${command} ${args}`);
    }
  }
  const env = (name: string) => ({ RUNTIME_DIRECTORY: "/r" } as Record<string, string>)[name];
  assertEquals(await planLaunch(["status", "x"], env, readable), {
    needs: clientNeeds("/r/podsandboxd.sock"),
  });
  // A config file the launcher cannot read yet: it must run itself with it readable.
  assertEquals(await planLaunch(["serve", "--config", "/etc/x.toml"], noEnv, () => false), {
    readConfig: "/etc/x.toml",
  });
  // Help and command lines the CLI refuses need nothing (the CLI says what is wrong).
  for (const args of [["serve", "--help"], ["serve", "--bogus"], ["version"], [], ["nope"]]) {
    assertEquals(await planLaunch(args, noEnv, readable), { needs: [] }, `${args}`);
  }
});

/** A temp directory with listening unix sockets at `names` (a file at "file:NAME"). */
async function socketRoot(names: string[]) {
  const path = await Deno.makeTempDir({ prefix: "psd-detect-" });
  const listeners: Deno.Listener[] = [];
  for (const name of names) {
    if (name.startsWith("file:")) await Deno.writeTextFile(join(path, name.slice(5)), "");
    else listeners.push(Deno.listen({ transport: "unix", path: join(path, name) }));
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      for (const l of listeners) l.close();
      await Deno.remove(path, { recursive: true });
    },
  };
}

Deno.test("detection takes the first existing socket in crictl-like order; files are skipped; none: the default, waited for", async () => {
  // The candidates, re-rooted in a temp directory.
  const rel = CONTAINERD_SOCKET_CANDIDATES.map((c) => c.slice(1).replaceAll("/", "_"));
  const table: Array<[present: string[], expected: number | undefined]> = [
    [[rel[0], rel[1], rel[2], rel[3]], 0],
    [[rel[1], rel[2], rel[3]], 1],
    [[rel[3], rel[2]], 2],
    [[rel[3]], 3],
    [[`file:${rel[0]}`, rel[3]], 3],
    [[], undefined],
  ];
  for (const [present, expected] of table) {
    await using root = await socketRoot(present);
    const candidates = rel.map((r) => join(root.path, r));
    const config = await loadServeConfig({ config: "/dev/null" }, noEnv, { candidates });
    const what = `present: ${present.join(" ")}`;
    if (expected === undefined) {
      assertEquals(config.config.address, "/run/containerd/containerd.sock", what);
      assertEquals(config.sources.address, "default", what);
    } else {
      assertEquals(config.config.address, candidates[expected], what);
      assertEquals(config.sources.address, "detected", what);
    }
    assertEquals(config.candidates, candidates);
  }
  // A configured address is never second-guessed.
  await using root = await socketRoot([rel[1]]);
  const candidates = rel.map((r) => join(root.path, r));
  const flagged = await loadServeConfig({ config: "/dev/null", address: "/x.sock" }, noEnv, {
    candidates,
  });
  assertEquals([flagged.config.address, flagged.sources.address, flagged.candidates], [
    "/x.sock",
    "flag",
    undefined,
  ]);
});

Deno.test("the launcher hands the socket it detected (or none) to the agent, which does not look again", async () => {
  const rel = CONTAINERD_SOCKET_CANDIDATES.map((c) => c.slice(1).replaceAll("/", "_"));
  await using root = await socketRoot([rel[1]]);
  const candidates = rel.map((r) => join(root.path, r));
  const args = ["serve", "--config", "/dev/null", "--state", "/p/state", "--socket", "/p/a.sock"];
  const plan = await planLaunch(args, noEnv, () => true, candidates);
  assert("needs" in plan);
  assertEquals(plan.env, { [DETECTED_ADDRESS_ENV]: candidates[1] });
  assert(plan.needs.some((n) => n.kind === "connect" && n.path === candidates[1]));
  // The agent's view: another candidate appeared since (the first in order); it keeps
  // the one it was granted.
  await using later = await socketRoot([rel[0], rel[1]]);
  const now = rel.map((r) => join(later.path, r));
  const handed = (value: string) => (name: string) =>
    name === DETECTED_ADDRESS_ENV ? value : undefined;
  const agent = await loadServeConfig({ config: "/dev/null" }, handed(candidates[1]), {
    candidates: now,
  });
  assertEquals([agent.config.address, agent.sources.address], [candidates[1], "detected"]);
  // None found by the launcher: the default, as planned, though one exists now.
  const none = await loadServeConfig({ config: "/dev/null" }, handed(""), { candidates: now });
  assertEquals([none.config.address, none.sources.address], [
    "/run/containerd/containerd.sock",
    "default",
  ]);
  // A configured address: nothing detected, nothing handed.
  const flagged = await planLaunch([...args, "--address", "/x.sock"], noEnv, () => true, now);
  assert("needs" in flagged);
  assertEquals(flagged.env, undefined);
});

Deno.test("--sandboxer adds what running pods takes: the CRI's directories, node files, mount/umount, hostname", async () => {
  const config = await loaded({
    sandboxer: "podsandboxd",
    address: "/run/k3s/containerd/containerd.sock",
    socket: "/s/a.sock",
  });
  const flags = permissionFlags(permissionSet(serveNeeds(config)));
  for (
    const dir of [
      "/var/lib/rancher/k3s/agent/containerd/io.containerd.grpc.v1.cri",
      "/run/k3s/containerd/io.containerd.grpc.v1.cri",
    ]
  ) {
    assert(flagValues(flags, "write").includes(dir), `${dir}: ${flags}`);
  }
  for (const file of ["/etc/hosts", "/etc/resolv.conf"]) {
    assert(flagValues(flags, "read").includes(file), file);
  }
  assertEquals(flagValues(flags, "run").sort(), ["cat", "mount", "umount"]);
  assertEquals(flagValues(flags, "sys").sort(), ["hostname", "osRelease", "uid"]);
  // Without --sandboxer, the agent runs nothing.
  const observer = await loaded({ socket: "/s/a.sock" });
  assertEquals(flagValues(permissionFlags(permissionSet(serveNeeds(observer))), "run"), []);
  // A binary compiled without --sandboxer says how to build one that can.
  const message = permissionProblem(
    missingPermissions(serveNeeds(config), queryOf(compilePermissionSet())),
    true,
  );
  assert(message.includes("deno task compile --sandboxer"), message);
  const withSandboxer = compilePermissionSet([], { sandboxer: true });
  assertEquals(withSandboxer.run.sort(), ["cat", "mount", "umount"]);
});
