/**
 * The shipped systemd unit, run for real: a systemd of its own (PID 1 of a private pid
 * and mount namespace, with private /tmp and /run) starts podsandboxd.service with all
 * its hardening, beside a private containerd on the default socket path. Proves the
 * hardening leaves the agent able to reach containerd's socket and its own paths, and
 * checks the modes, the health probe, a recorded exit, restart on failure and stop.
 *
 * Two test-only changes, in a drop-in, neither touching the hardening: the unit starts
 * without sysinit.target (this machine has its own init; pulling sysinit would run the
 * host's boot services), and ExecStart is a stand-in running the source with `deno run`
 * and exactly the permissions `deno task compile` bakes into the binary (which cannot be
 * built here: no denort), which needs Deno's module cache (ProtectHome hides /root/.cache).
 */
import { dirname, join } from "node:path";
import { assert, assertEquals } from "./harness/assert.ts";
import { requireContainerdBinaries } from "./harness/containerd.ts";
import { containerdConfig } from "./harness/containerd_config.ts";
import { buildImages, BUSYBOX_IMAGE } from "./harness/image.ts";
import { eventually, run } from "./harness/process.ts";
import { compilePermissionSet } from "../src/permissions/compile.ts";
import { permissionFlags } from "../src/permissions/flags.ts";

const root = new URL("..", import.meta.url).pathname;
const denoDir = Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");

Deno.test("the systemd unit runs the agent hardened: modes, health, an exit, restart on failure, stop", async () => {
  // The selected containerd (PODSANDBOXD_CONTAINERD), bound at /opt/psd-containerd.
  const containerdBin = await requireContainerdBinaries();
  // Visible inside the namespace, whose /tmp is private.
  const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "psd-unit-" });
  let boot: Deno.ChildProcess | undefined;
  let systemdPid: number | undefined;
  const createdMountPoints: string[] = [];
  try {
    const etc = join(dir, "etc-systemd");
    await Deno.mkdir(join(etc, "podsandboxd.service.d"), { recursive: true });
    const unit = (await Deno.readTextFile(join(root, "scripts/packaging/podsandboxd.service")))
      .replaceAll("@BINDIR@", "/usr/local/bin");
    await Deno.writeTextFile(join(etc, "podsandboxd.service"), unit);
    await Deno.writeTextFile(
      join(etc, "podsandboxd.service.d", "test.conf"),
      [
        "[Unit]",
        "DefaultDependencies=no",
        "[Service]",
        "Environment=DENO_DIR=/var/cache/psd-deno DENO_NO_UPDATE_CHECK=1",
        "ReadWritePaths=/var/cache/psd-deno",
        `StandardOutput=append:${dir}/agent.log`,
        `StandardError=append:${dir}/agent.log`,
      ].join("\n"),
    );
    await Deno.writeTextFile(join(etc, "psd-test.target"), "[Unit]\nDefaultDependencies=no\n");
    for (
      const masked of [
        "containerd.service",
        "sysinit.target",
        "systemd-tmpfiles-setup.service",
        "systemd-tmpfiles-setup-dev.service",
        "systemd-tmpfiles-clean.service",
      ]
    ) await Deno.symlink("/dev/null", join(etc, masked));

    await Deno.mkdir(join(dir, "bin"));
    await Deno.mkdir(join(dir, "opt"));
    await Deno.writeTextFile(
      join(dir, "bin", "podsandboxd"),
      // The source and Deno are bound at /opt/psd-src and /opt/psd-deno: wherever the
      // checkout lives (/tmp included), the unit's PrivateTmp and ProtectHome hide it.
      `#!/bin/sh\nexec /opt/psd-deno/deno run --cached-only ${
        permissionFlags(compilePermissionSet()).map((f) => `'${f}'`).join(" ")
      } --config /opt/psd-src/deno.json /opt/psd-src/main.ts "$@"\n`,
    );
    await Deno.chmod(join(dir, "bin", "podsandboxd"), 0o755);
    await Deno.mkdir(join(dir, "etc-podsandboxd"));
    await Deno.copyFile(
      join(root, "scripts/packaging/config.toml"),
      join(dir, "etc-podsandboxd", "config.toml"),
    );
    // The podsandboxd group, in this namespace only.
    await Deno.writeTextFile(
      join(dir, "group"),
      (await Deno.readTextFile("/etc/group")) + "podsandboxd:x:990:\n",
    );
    await Deno.mkdir(join(dir, "var-lib"));
    await Deno.writeTextFile(
      join(dir, "containerd.toml"),
      containerdConfig(containerdBin.version, {
        dir: join(dir, "containerd"),
        state: "/run/psd-containerd-state",
        socket: "/run/containerd/containerd.sock",
        ttrpcSocket: "/run/containerd/containerd.ttrpc.sock",
      }),
    );
    const [image] = await buildImages(join(dir, "img"), [{
      name: BUSYBOX_IMAGE,
      entrypoint: ["/bin/sh"],
    }]);
    await Deno.writeTextFile(
      join(dir, "boot.sh"),
      [
        "#!/bin/bash",
        "set -e",
        "mount --make-rprivate /",
        // Before /tmp is replaced: the checkout may live there.
        `mount -t tmpfs tmpfs ${dir}/opt`,
        `mkdir -p ${dir}/opt/psd-src ${dir}/opt/psd-deno ${dir}/opt/psd-containerd`,
        `mount --bind ${root} ${dir}/opt/psd-src`,
        `mount --bind ${dirname(Deno.execPath())} ${dir}/opt/psd-deno`,
        `mount --bind ${containerdBin.binDir} ${dir}/opt/psd-containerd`,
        `mount --rbind ${dir}/opt /opt`,
        "mount -t tmpfs tmpfs /tmp",
        "mount -t tmpfs tmpfs /run",
        "mkdir -p /run/systemd/system /run/containerd /etc/podsandboxd /var/lib/podsandboxd /var/cache/psd-deno",
        `mount --bind ${etc} /etc/systemd/system`,
        `mount --bind ${dir}/bin /usr/local/bin`,
        `mount --bind ${dir}/etc-podsandboxd /etc/podsandboxd`,
        `mount --bind ${dir}/var-lib /var/lib/podsandboxd`,
        `mount --bind ${denoDir} /var/cache/psd-deno`,
        `mount --bind ${dir}/group /etc/group`,
        "exec env container=podsandboxd-test /lib/systemd/systemd --system --unit=psd-test.target",
      ].join("\n"),
    );
    await Deno.chmod(join(dir, "boot.sh"), 0o755);
    // The host's mount points must exist for the binds (created empty if missing, and
    // removed again after).
    for (const p of ["/etc/podsandboxd", "/var/lib/podsandboxd", "/var/cache/psd-deno"]) {
      if (await Deno.stat(p).catch(() => null)) continue;
      await Deno.mkdir(p, { recursive: true });
      createdMountPoints.push(p);
    }

    boot = new Deno.Command("unshare", {
      args: ["--pid", "--fork", "--mount", "--mount-proc", join(dir, "boot.sh")],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const unsharePid = boot.pid;
    systemdPid = await eventually("systemd to start in its namespace", async () => {
      const children = (await Deno.readTextFile(`/proc/${unsharePid}/task/${unsharePid}/children`))
        .trim();
      const pid = Number(children.split(" ")[0]);
      return pid && (await Deno.readTextFile(`/proc/${pid}/comm`)).trim() === "systemd" ? pid : 0;
    });
    const ns = (...args: string[]) =>
      run("nsenter", ["-t", String(systemdPid), "-m", "-p", ...args], { allowFailure: true });
    await eventually(
      "systemd to be running",
      async () => (await ns("systemctl", "is-system-running")).stdout.trim() === "running",
    );

    // Its own directory first on containerd's PATH: it finds its shim there (runc stays the system's).
    await ns(
      "sh",
      "-c",
      `PATH=/opt/psd-containerd:$PATH setsid /opt/psd-containerd/containerd --config ${dir}/containerd.toml > ${dir}/containerd.log 2>&1 < /dev/null &`,
    );
    const ctr = "/opt/psd-containerd/ctr";
    await eventually("containerd to answer", async () => (await ns(ctr, "version")).code === 0);
    const version = (await ns(ctr, "version")).stdout;
    assert(
      new RegExp(`Server:[\\s\\S]*Version:\\s+v?${containerdBin.version.replace(".", "\\.")}\\.`)
        .test(version),
      `containerd ${containerdBin.version} runs: ${version}`,
    );
    assertEquals((await ns(ctr, "-n", "k8s.io", "images", "import", image)).code, 0);

    const start = await ns("systemctl", "start", "podsandboxd");
    assertEquals(start.code, 0, start.stderr);
    const cli = (...args: string[]) => ns("/usr/local/bin/podsandboxd", ...args);
    await eventually(
      "the agent to be healthy under the unit",
      async () => (await cli("health")).code === 0,
      {
        timeoutMs: 30_000,
        intervalMs: 200,
      },
    );

    // Modes: the socket is the podsandboxd group's, the state private.
    const modes = await ns(
      "stat",
      "-c",
      "%a %U:%G %n",
      "/run/podsandboxd",
      "/run/podsandboxd/podsandboxd.sock",
      "/var/lib/podsandboxd",
      "/var/lib/podsandboxd/podsandboxd.kv",
    );
    assertEquals(modes.stdout.trim().split("\n"), [
      "750 root:podsandboxd /run/podsandboxd",
      "660 root:podsandboxd /run/podsandboxd/podsandboxd.sock",
      "700 root:podsandboxd /var/lib/podsandboxd",
      "600 root:podsandboxd /var/lib/podsandboxd/podsandboxd.kv",
    ]);

    // Through containerd's default socket, an exit is recorded.
    const created = await ns(
      ctr,
      "-n",
      "k8s.io",
      "run",
      "-d",
      "--null-io",
      "--label",
      "io.cri-containerd.kind=sandbox",
      BUSYBOX_IMAGE,
      "unit-sb",
      "sh",
      "-c",
      "sleep 0.3; exit 6",
    );
    assertEquals(created.code, 0, created.stderr);
    const waited = await cli("wait", "unit-sb", "--json", "--timeout", "30s");
    assertEquals(JSON.parse(waited.stdout).exitStatus, 6, waited.stderr);

    // Restart=on-failure brings a killed agent back; its store still answers.
    const mainPid = (await ns("systemctl", "show", "-p", "MainPID", "--value", "podsandboxd"))
      .stdout.trim();
    await ns("kill", "-9", mainPid);
    await eventually(
      "systemd to restart the agent",
      async () =>
        (await ns("systemctl", "show", "-p", "NRestarts", "--value", "podsandboxd")).stdout
            .trim() === "1" &&
        (await cli("health")).code === 0,
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    assertEquals(JSON.parse((await cli("status", "unit-sb", "--json")).stdout).exitStatus, 6);

    // A clean stop.
    assertEquals((await ns("systemctl", "stop", "podsandboxd")).code, 0);
    const after = await ns("systemctl", "show", "-p", "ActiveState", "-p", "Result", "podsandboxd");
    assert(
      /ActiveState=inactive/.test(after.stdout) && /Result=success/.test(after.stdout),
      after.stdout,
    );
  } catch (err) {
    const log = await Deno.readTextFile(join(dir, "agent.log")).catch(() => "(no agent log)");
    throw new Error(`${err}\nagent log:\n${log.slice(-3000)}`, { cause: err });
  } finally {
    // PID 1 of the namespace: killing it ends everything in it (agent, containerd, shims).
    if (systemdPid) {
      try {
        Deno.kill(systemdPid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await boot?.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    for (const p of createdMountPoints) await Deno.remove(p).catch(() => {}); // only if still empty
  }
});
