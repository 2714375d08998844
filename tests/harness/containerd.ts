/**
 * A private containerd for tests: its own root, state, gRPC and ttrpc sockets under a
 * temporary directory, the CRI plugin off unless asked for. Stopping it cleans up every
 * task, shim and mount it made, by PID.
 *
 * @module
 */
import { join } from "node:path";
import { GrpcContainerdClient } from "../../src/containerd/grpc_client.ts";
import { alive, eventually, pidsWithCmdline, run } from "./process.ts";

export interface ContainerdOptions {
  /** Extra TOML appended to the config (e.g. the CRI plugin's section). */
  extraConfig?: string;
  /** Enable containerd's CRI plugin. */
  cri?: boolean;
}

const BINARIES = ["containerd", "ctr", "runc", "containerd-shim-runc-v2"];

/** Throws with the install command when a binary the tests need is missing. */
export async function requireContainerdBinaries(): Promise<void> {
  const missing: string[] = [];
  for (const bin of BINARIES) {
    const { code } = await run("sh", ["-c", `command -v ${bin}`], { allowFailure: true });
    if (code !== 0) missing.push(bin);
  }
  if (missing.length) {
    throw new Error(
      `missing ${
        missing.join(", ")
      }: install with "apt-get update && apt-get install -y containerd runc busybox-static"`,
    );
  }
}

export class PrivateContainerd {
  readonly dir: string;
  readonly socket: string;
  readonly #config: string;
  readonly #log: string;
  #process?: Deno.ChildProcess;

  private constructor(dir: string) {
    this.dir = dir;
    this.socket = join(dir, "c.sock");
    this.#config = join(dir, "config.toml");
    this.#log = join(dir, "containerd.log");
  }

  /** Creates the directory and config and starts containerd; resolves once it answers. */
  static async start(options: ContainerdOptions = {}): Promise<PrivateContainerd> {
    const c = await PrivateContainerd.prepare(options);
    await c.boot();
    return c;
  }

  /** Creates the directory and config without starting containerd (see boot()). */
  static async prepare(options: ContainerdOptions = {}): Promise<PrivateContainerd> {
    await requireContainerdBinaries();
    // Short paths: unix socket paths are limited to 107 bytes.
    const dir = await Deno.makeTempDir({ prefix: "psd-" });
    const c = new PrivateContainerd(dir);
    await Deno.writeTextFile(c.#config, c.#configText(options));
    return c;
  }

  #configText(options: ContainerdOptions): string {
    const d = this.dir;
    return [
      "version = 2",
      `root = "${d}/root"`,
      `state = "${d}/state"`,
      options.cri ? "" : `disabled_plugins = ["io.containerd.grpc.v1.cri"]`,
      "[grpc]",
      `  address = "${this.socket}"`,
      "[ttrpc]",
      `  address = "${d}/c.ttrpc.sock"`,
      `[plugins."io.containerd.internal.v1.opt"]`,
      `  path = "${d}/opt"`,
      options.extraConfig ?? "",
    ].join("\n");
  }

  /** PID of the running containerd. */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** (Re)starts containerd on the same directories and waits until it answers. */
  async boot(): Promise<void> {
    const log = await Deno.open(this.#log, { create: true, append: true, write: true });
    this.#process = new Deno.Command("containerd", {
      args: ["--config", this.#config],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // containerd logs to stderr: keep it in the directory for post-mortems.
    this.#process.stderr.pipeTo(log.writable).catch(() => {});
    const client = new GrpcContainerdClient({ address: this.socket, callTimeoutMs: 1_000 });
    try {
      await eventually("containerd to answer on " + this.socket, () => client.version(), {
        timeoutMs: 15_000,
        intervalMs: 50,
      });
    } finally {
      client.close();
    }
  }

  /** Sends `signal` to containerd and waits for it to exit. */
  async kill(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const p = this.#process;
    if (!p) return;
    this.#process = undefined;
    try {
      p.kill(signal);
    } catch {
      // Already gone.
    }
    await p.status;
  }

  /** Runs ctr against this containerd. */
  ctr(namespace: string, args: string[], options: { allowFailure?: boolean } = {}) {
    return run("ctr", ["-a", this.socket, "-n", namespace, ...args], options);
  }

  /** Kills and deletes every task and container, stops containerd, kills leftover shims, unmounts, removes the directory. */
  async stop(): Promise<void> {
    // Tasks are cleaned up through containerd: bring it back if a test left it down.
    if (!this.#process) await this.boot().catch(() => {});
    if (this.#process) {
      const namespaces = (await run("ctr", ["-a", this.socket, "namespaces", "ls", "-q"], {
        allowFailure: true,
      })).stdout.split("\n").filter(Boolean);
      for (const ns of namespaces) {
        const tasks = (await this.ctr(ns, ["tasks", "ls", "-q"], { allowFailure: true })).stdout
          .split("\n").filter(Boolean);
        await Promise.all(tasks.map(async (id) => {
          await this.ctr(ns, ["tasks", "kill", "-a", "-s", "SIGKILL", id], { allowFailure: true });
          await this.ctr(ns, ["tasks", "delete", "-f", id], { allowFailure: true });
        }));
        const containers = (await this.ctr(ns, ["containers", "ls", "-q"], { allowFailure: true }))
          .stdout.split("\n").filter(Boolean);
        if (containers.length) {
          await this.ctr(ns, ["containers", "delete", ...containers], { allowFailure: true });
        }
      }
    }
    await this.kill("SIGTERM");
    // Shims outlive containerd; theirs name our socket on their command line.
    for (const pid of await pidsWithCmdline(this.socket)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Gone already.
      }
    }
    await eventually("shims to exit", async () => {
      const left = await pidsWithCmdline(this.socket);
      return left.filter(alive).length === 0;
    }, { timeoutMs: 5_000 });
    const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
      .map((line) => line.split(" ")[4])
      .filter((m) => m?.startsWith(this.dir + "/"))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) await run("umount", ["-l", m], { allowFailure: true });
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
