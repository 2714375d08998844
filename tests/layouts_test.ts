/**
 * Any layout, as a user starts it: `deno task podsandboxd serve` with private paths for
 * the state, the sockets, containerd's socket and the config file — given as flags, in a
 * config file elsewhere, in PODSANDBOXD_* or systemd's variables — serves against a real
 * private containerd, records an exit and answers, with no grant of the tests' own and
 * no warning from Deno. Also: signals through the task and the launcher, and finding
 * containerd's socket on a node (a mount namespace with its own /run).
 */
import { join } from "node:path";
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import { AgentProcess, runCli } from "./harness/agent.ts";
import { PrivateContainerd } from "./harness/containerd.ts";
import { Containers, importImages, uniqueId } from "./harness/containers.ts";

const NS = "psd-layout";

interface Layout {
  name: string;
  /** Makes the layout's files; returns the serve command line and where it serves. */
  make(dir: string, containerd: string): Promise<{
    args: string[];
    socket: string;
    env?: Record<string, string>;
    metricsSocket?: string;
    /** Client commands find the socket by themselves (its default, from this env). */
    clientEnv?: Record<string, string>;
    cleanup?: string;
  }>;
}

const toml = (values: Record<string, string>) =>
  Object.entries(values).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join("\n") + "\n";

const LAYOUTS: Layout[] = [
  {
    name: "flags: state, socket and metrics socket each in a directory of its own",
    make: (dir, containerd) =>
      Promise.resolve({
        args: [
          "serve",
          "--address",
          containerd,
          "--namespace",
          NS,
          "--state",
          join(dir, "var/lib/psd"),
          "--socket",
          join(dir, "run/api/agent.sock"),
          "--metrics-address",
          `unix:${join(dir, "run/metrics/metrics.sock")}`,
          "--log-format",
          "json",
        ],
        socket: join(dir, "run/api/agent.sock"),
        metricsSocket: join(dir, "run/metrics/metrics.sock"),
      }),
  },
  {
    name: "a config file elsewhere (--config) naming every path",
    async make(dir, containerd) {
      await Deno.mkdir(join(dir, "etc"));
      const file = join(dir, "etc/podsandboxd.toml");
      await Deno.writeTextFile(
        file,
        toml({
          address: `unix://${containerd}`,
          namespace: NS,
          state: join(dir, "data"),
          socket: join(dir, "sock/agent.sock"),
          "metrics-address": `unix:${join(dir, "sock/metrics.sock")}`,
          "log-format": "json",
        }),
      );
      return {
        args: ["serve", "--config", file],
        socket: join(dir, "sock/agent.sock"),
        metricsSocket: join(dir, "sock/metrics.sock"),
      };
    },
  },
  {
    name: "the environment: PODSANDBOXD_* and a config file named by PODSANDBOXD_CONFIG",
    async make(dir, containerd) {
      const file = join(dir, "conf.toml");
      await Deno.writeTextFile(file, toml({ namespace: NS, "log-format": "json" }));
      return {
        args: ["serve"],
        socket: join(dir, "env-run/agent.sock"),
        env: {
          PODSANDBOXD_CONFIG: file,
          PODSANDBOXD_ADDRESS: containerd,
          PODSANDBOXD_STATE: join(dir, "env-state"),
          PODSANDBOXD_SOCKET: join(dir, "env-run/agent.sock"),
        },
      };
    },
  },
  {
    name: "systemd's $STATE_DIRECTORY and $RUNTIME_DIRECTORY, which clients find too",
    make(dir, containerd) {
      const env = {
        STATE_DIRECTORY: join(dir, "sd-state"),
        RUNTIME_DIRECTORY: join(dir, "sd-run"),
      };
      return Promise.resolve({
        args: ["serve", "--address", containerd, "--namespace", NS, "--log-format", "json"],
        socket: join(dir, "sd-run/podsandboxd.sock"),
        env,
        clientEnv: env,
      });
    },
  },
  {
    name: "the /var/run spelling of a path, and containerd's socket through a symlink",
    async make(dir, containerd) {
      const link = join(dir, "containerd-link.sock");
      await Deno.symlink(containerd, link);
      const run = `/run/${dir.split("/").pop()}`;
      return {
        args: [
          "serve",
          "--address",
          link,
          "--namespace",
          NS,
          "--state",
          join(dir, "st"),
          "--socket",
          `/var${run}/agent.sock`,
          "--log-format",
          "json",
        ],
        socket: `/var${run}/agent.sock`,
        cleanup: run,
      };
    },
  },
];

/** Deno's own warnings ("Warning …", the permission set's "experimental feature"). */
function assertNoDenoWarning(text: string, what: string): void {
  assert(!/experimental/i.test(text), `${what}: ${text}`);
  assert(!/^\W*Warning\b/m.test(text), `${what}: ${text}`);
}

/** GET /metrics over a unix socket. */
async function scrape(socket: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  await conn.write(new TextEncoder().encode("GET /metrics HTTP/1.0\r\nHost: agent\r\n\r\n"));
  let text = "";
  for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) text += chunk;
  return text;
}

Deno.test("private layouts serve through deno task podsandboxd, record an exit and answer, without extra grants or warnings", async (t) => {
  const containerd = await PrivateContainerd.start();
  const c = new Containers(containerd, NS);
  try {
    await importImages(containerd, NS);
    for (const layout of LAYOUTS) {
      await t.step(layout.name, async () => {
        const dir = await Deno.makeTempDir({ prefix: "psd-l-" });
        const made = await layout.make(dir, containerd.socket);
        let agent: AgentProcess | undefined;
        try {
          agent = await AgentProcess.start({
            containerdSocket: containerd.socket,
            dir,
            namespace: NS,
            layout: made,
          });
          const id = uniqueId("layout");
          await c.run(id, ["sh", "-c", "sleep 0.3; exit 7"]);
          const client = made.clientEnv
            ? { env: made.clientEnv, socket: [] }
            : { env: undefined, socket: ["--socket", made.socket] };
          const waited = await runCli(
            ["wait", id, "--json", "--timeout", "60s", "--namespace", NS, ...client.socket],
            { env: client.env },
          );
          assertEquals(waited.code, 0, waited.stderr);
          assertEquals(JSON.parse(waited.stdout).exitStatus, 7);
          // A crash leaves both sockets behind; the next start replaces them.
          assertEquals((await agent.stop("SIGKILL")).code, 137);
          agent = await AgentProcess.start({
            containerdSocket: containerd.socket,
            dir,
            namespace: NS,
            layout: made,
          });
          const status = await runCli(
            ["status", id, "--json", "--namespace", NS, ...client.socket],
            {
              env: client.env,
            },
          );
          assertEquals(status.code, 0, status.stderr);
          assertEquals(JSON.parse(status.stdout).exitStatus, 7, "recorded before the crash");
          assertNoDenoWarning(waited.stderr + status.stderr, "client commands");
          if (made.metricsSocket) {
            assertMatch(
              await scrape(made.metricsSocket),
              /podsandboxd_sandboxes\{state="notready"\} [1-9]/, // this exit, and earlier layouts'
            );
          }
          const stopped = await agent.stop();
          assertEquals(stopped.code, 0, agent.logText());
          const raw = agent.logs.filter((l) => l.level === "RAW").map((l) => l.message).join("\n");
          assertNoDenoWarning(raw, "the agent's stderr");
          assertEquals(raw, "", "the agent's stderr holds only its JSON log lines");
        } finally {
          await agent?.stop();
          await Deno.remove(dir, { recursive: true }).catch(() => {});
          if (made.cleanup) await Deno.remove(made.cleanup, { recursive: true }).catch(() => {});
        }
      });
    }
  } finally {
    c.close();
    await containerd.stop();
  }
});

Deno.test("signals go through the task and the launcher; the agent's exit status comes back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-l-" });
  const start = () =>
    AgentProcess.start({
      containerdSocket: join(dir, "no-containerd.sock"), // the store answers without it
      dir,
      namespace: NS,
    });
  try {
    for (const signal of ["SIGTERM", "SIGINT"] as const) {
      const agent = await start();
      const status = await agent.stop(signal);
      assertEquals(status.code, 0, `${signal}: ${agent.logText()}`);
      assert(agent.logs.some((l) => l.message === "stopping on signal"), signal);
    }
    // The agent does not catch SIGHUP: it dies of it, and 128 + 1 comes back.
    const hup = await start();
    assertEquals((await hup.stop("SIGHUP")).code, 129);
    // A crash (SIGKILL of the agent's own process): 128 + 9.
    const killed = await start();
    assertEquals((await killed.stop("SIGKILL")).code, 137);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

/**
 * A command in a mount namespace whose /run is a fresh tmpfs with containerd's socket
 * bound at each of `at` (none: no containerd socket anywhere in /run).
 */
function inNodeNamespace(containerdSocket: string | undefined, at: string[]): string[] {
  const binds = at.flatMap((path) => [
    `mkdir -p ${path.slice(0, path.lastIndexOf("/"))}`,
    `touch ${path}`,
    `mount --bind ${containerdSocket} ${path}`,
  ]);
  const script = ["set -e", "mount -t tmpfs tmpfs /run", ...binds, 'exec "$@"'].join("\n");
  return ["unshare", "--mount", "--propagation", "private", "--fork", "sh", "-c", script, "sh"];
}

Deno.test("with no --address, containerd's socket is found on the node (k3s's here, before Docker's), logged, shown as detected; none found: the default, waited for", async () => {
  const containerd = await PrivateContainerd.start();
  const c = new Containers(containerd, NS);
  const dir = await Deno.makeTempDir({ prefix: "psd-l-" });
  const k3s = "/run/k3s/containerd/containerd.sock";
  const prefix = inNodeNamespace(containerd.socket, [
    "/run/docker/containerd/containerd.sock",
    k3s,
  ]);
  let agent: AgentProcess | undefined;
  try {
    await importImages(containerd, NS);
    const config = await runCli(["config", "--json"], { prefix });
    assertEquals(config.code, 0, config.stderr);
    assertEquals(JSON.parse(config.stdout).values.address, { value: k3s, source: "detected" });

    agent = await AgentProcess.start({
      containerdSocket: containerd.socket,
      dir,
      namespace: NS,
      prefix,
      layout: {
        args: [
          "serve",
          "--namespace",
          NS,
          "--state",
          join(dir, "state"),
          "--socket",
          join(dir, "agent.sock"),
          "--log-format",
          "json",
        ],
        socket: join(dir, "agent.sock"),
      },
    });
    await agent.waitForLog((l) =>
      l.message === `containerd socket ${k3s} detected (the first existing of ` +
          "/run/containerd/containerd.sock, /run/k3s/containerd/containerd.sock, " +
          "/var/snap/microk8s/common/run/containerd.sock, /run/docker/containerd/containerd.sock)"
    );
    const id = uniqueId("detected");
    await c.run(id, ["sh", "-c", "exit 3"]);
    const waited = await agent.cli("wait", id, "--json", "--timeout", "60s");
    assertEquals(JSON.parse(waited.stdout).exitStatus, 3, waited.stderr);
    // unshare does not forward signals: stop the agent's own process.
    Deno.kill(agent.pid, "SIGTERM");
    assertEquals((await agent.status).code, 0);

    const none = await runCli(["config", "--json"], { prefix: inNodeNamespace(undefined, []) });
    assertEquals(none.code, 0, none.stderr);
    assertEquals(JSON.parse(none.stdout).values.address, {
      value: "/run/containerd/containerd.sock",
      source: "default",
    });
  } finally {
    await agent?.stop();
    c.close();
    await containerd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("no command prints a Deno warning as the README runs it (deno task, no --quiet)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "psd-l-" });
  try {
    const root = new URL("..", import.meta.url).pathname;
    for (
      const args of [
        ["version"],
        ["config"],
        ["serve", "--help"],
        ["status", "x", "--socket", join(dir, "none.sock")],
      ]
    ) {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["task", "--config", `${root}deno.json`, "podsandboxd", ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assertNoDenoWarning(text, args.join(" "));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
