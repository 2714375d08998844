/**
 * A private containerd for tests: its own root, state, gRPC and ttrpc sockets under a
 * temporary directory, the CRI plugin off unless asked for. The version is the selected
 * one (PODSANDBOXD_CONTAINERD, see containerd_version.ts) unless given. Stopping it
 * cleans up every task, shim and mount it made, by PID.
 *
 * @module
 */
import { join } from "node:path";
import { GrpcContainerdClient } from "../../src/containerd/grpc_client.ts";
import { containerdConfig, type CriSettings } from "./containerd_config.ts";
import {
  type ContainerdBinaries,
  containerdBinaries,
  type ContainerdVersion,
  selectedContainerdVersion,
} from "./containerd_version.ts";
import { alive, eventually, pidsWithCmdline, run } from "./process.ts";

export interface ContainerdOptions {
  /** Extra TOML appended to the config. */
  extraConfig?: string;
  /** Enable containerd's CRI plugin with these settings. */
  cri?: CriSettings;
  /** Which containerd. @default the selected one (PODSANDBOXD_CONTAINERD) */
  version?: ContainerdVersion;
  /** After every (re)boot, once the socket answers: resolves when containerd is usable for the test. */
  readiness?: (socket: string) => Promise<void>;
}

/** Throws with the fix when the selected containerd (or runc) cannot be run. */
export async function requireContainerdBinaries(
  version: ContainerdVersion = selectedContainerdVersion(),
): Promise<ContainerdBinaries> {
  return await containerdBinaries(version);
}

export class PrivateContainerd {
  readonly dir: string;
  readonly socket: string;
  readonly #config: string;
  readonly #log: string;
  readonly #bin: ContainerdBinaries;
  readonly #readiness?: (socket: string) => Promise<void>;
  #process?: Deno.ChildProcess;

  private constructor(
    dir: string,
    bin: ContainerdBinaries,
    readiness?: (socket: string) => Promise<void>,
  ) {
    this.dir = dir;
    this.#bin = bin;
    this.#readiness = readiness;
    this.socket = join(dir, "c.sock");
    this.#config = join(dir, "config.toml");
    this.#log = join(dir, "containerd.log");
  }

  /** Creates the directory and config and starts containerd; resolves once it answers. */
  static async start(options: ContainerdOptions = {}): Promise<PrivateContainerd> {
    const c = await PrivateContainerd.prepare(options);
    try {
      await c.boot();
    } catch (err) {
      // The caller gets no object to stop: what boot() started and made goes here.
      await c.stop().catch(() => {});
      throw err;
    }
    return c;
  }

  /** Creates the directory and config without starting containerd (see boot()). */
  static async prepare(options: ContainerdOptions = {}): Promise<PrivateContainerd> {
    const bin = await requireContainerdBinaries(options.version);
    // Short paths: unix socket paths are limited to 107 bytes.
    const dir = await Deno.makeTempDir({ prefix: "psd-" });
    const c = new PrivateContainerd(dir, bin, options.readiness);
    await Deno.writeTextFile(
      c.#config,
      containerdConfig(bin.version, {
        dir,
        socket: c.socket,
        ttrpcSocket: join(dir, "c.ttrpc.sock"),
        cri: options.cri,
        extra: options.extraConfig,
      }),
    );
    return c;
  }

  /** The containerd version this instance runs. */
  get version(): ContainerdVersion {
    return this.#bin.version;
  }

  /** PID of the running containerd. */
  get pid(): number | undefined {
    return this.#process?.pid;
  }

  /** (Re)starts containerd on the same directories and waits until it answers (and is ready, see options.readiness). */
  async boot(): Promise<void> {
    // containerd appends its log (stderr) to a file in the directory, for post-mortems:
    // the shell execs it, so the pid is containerd's and no pipe depends on this process.
    this.#process = new Deno.Command("sh", {
      args: [
        "-c",
        'exec "$0" --config "$1" 2>>"$2"',
        this.#bin.containerd,
        this.#config,
        this.#log,
      ],
      // Its own directory first: containerd finds its shim on PATH (runc is the system's).
      env: this.#bin.env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const client = new GrpcContainerdClient({ address: this.socket, callTimeoutMs: 1_000 });
    try {
      const { version } = await eventually(
        "containerd to answer on " + this.socket,
        () => client.version(),
        { timeoutMs: 15_000, intervalMs: 50 },
      );
      // The selected version runs, not whatever else is on PATH.
      if (!version.startsWith(this.#bin.version + ".")) {
        throw new Error(
          `${this.#bin.containerd} reports version ${version}, expected ${this.#bin.version}.x`,
        );
      }
    } finally {
      client.close();
    }
    await this.#readiness?.(this.socket);
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

  /** containerd's log lines that mention `needle` (its log is kept in the directory). */
  async logLines(needle: string): Promise<string[]> {
    const log = await Deno.readTextFile(this.#log).catch(() => "");
    return log.split("\n").filter((l) => l.includes(needle));
  }

  /**
   * For a test's failure message: containerd's log lines about `needle`, and the
   * goroutines of its stack dump (SIGUSR1, written to its log) that are in the CRI or a
   * sandbox controller — where a call that never answered is stuck.
   */
  async postMortem(needle: string): Promise<string> {
    const before = (await Deno.readTextFile(this.#log).catch(() => "")).length;
    try {
      this.#process?.kill("SIGUSR1");
    } catch {
      // Gone: the log is all there is.
    }
    await new Promise((r) => setTimeout(r, 1_000));
    const log = await Deno.readTextFile(this.#log).catch(() => "");
    const about = log.slice(0, before).split("\n").filter((l) => l.includes(needle)).slice(-30);
    // The dump is one log record whose message holds the stacks with escaped newlines.
    const dump = log.slice(before).replaceAll("\\n", "\n").replaceAll("\\t", "\t");
    const stuck = dump.split("\n\n").filter((g) =>
      /cri|sandbox/i.test(g) && /^goroutine \d+/m.test(g)
    );
    return `containerd's log about ${needle}:\n${about.join("\n")}\n` +
      `goroutines in the CRI or a sandbox controller (${stuck.length}):\n` +
      stuck.join("\n\n").slice(0, 30_000);
  }

  /** Runs ctr against this containerd. */
  ctr(namespace: string, args: string[], options: { allowFailure?: boolean } = {}) {
    return run(this.#bin.ctr, ["-a", this.socket, "-n", namespace, ...args], options);
  }

  /** Kills and deletes every task and container, stops containerd, kills leftover shims, unmounts, removes the directory. */
  async stop(): Promise<void> {
    // Tasks are cleaned up through containerd: bring it back if a test left it down.
    if (!this.#process) await this.boot().catch(() => {});
    if (this.#process) {
      const namespaces = (await run(this.#bin.ctr, ["-a", this.socket, "namespaces", "ls", "-q"], {
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
