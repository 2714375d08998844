/**
 * Real containers for tests, from the busybox image the tests build, created and
 * driven with ctr against a private containerd.
 *
 * @module
 */
import { GrpcContainerdClient } from "../../src/containerd/grpc_client.ts";
import type { TaskInfo } from "../../src/containerd/types.ts";
import type { PrivateContainerd } from "./containerd.ts";
import { eventually } from "./process.ts";
import { buildImages, BUSYBOX_IMAGE, PAUSE_EXIT3_IMAGE, PAUSE_IMAGE } from "./image.ts";

export const SANDBOX_LABEL = "io.cri-containerd.kind=sandbox";

let imageTars: Promise<string[]> | undefined;

/** Builds the test images once per test process. */
function images(): Promise<string[]> {
  imageTars ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "psd-img-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // best effort
      }
    });
    return await buildImages(dir, [
      { name: BUSYBOX_IMAGE, entrypoint: ["/bin/sh"] },
      { name: PAUSE_IMAGE, entrypoint: ["/bin/sleep", "2147483647"] },
      { name: PAUSE_EXIT3_IMAGE, entrypoint: ["/bin/sh", "-c", "sleep 2; exit 3"] },
    ]);
  })();
  return imageTars;
}

/** Imports the test images into `namespace`. */
export async function importImages(
  containerd: PrivateContainerd,
  namespace: string,
): Promise<void> {
  for (const tar of await images()) {
    await containerd.ctr(namespace, ["images", "import", tar]);
  }
}

/** Unique container ids: runc keeps state per namespace/id under /run, shared by every containerd. */
export function uniqueId(name: string): string {
  return `${name}-${crypto.randomUUID().slice(0, 8)}`;
}

export class Containers {
  readonly client: GrpcContainerdClient;

  constructor(readonly containerd: PrivateContainerd, readonly namespace: string) {
    this.client = new GrpcContainerdClient({ address: containerd.socket });
  }

  /** Runs a detached container; `sandbox` labels it as a CRI sandbox. */
  async run(
    id: string,
    command: string[],
    options: { sandbox?: boolean; labels?: Record<string, string> } = {},
  ): Promise<void> {
    const labels = Object.entries(options.labels ?? {}).flatMap((
      [k, v],
    ) => ["--label", `${k}=${v}`]);
    if (options.sandbox ?? true) labels.push("--label", SANDBOX_LABEL);
    await this.containerd.ctr(this.namespace, [
      "run",
      "-d",
      "--null-io",
      ...labels,
      BUSYBOX_IMAGE,
      id,
      ...command,
    ]);
  }

  kill(id: string, signal = "SIGKILL") {
    return this.containerd.ctr(this.namespace, ["tasks", "kill", "-s", signal, id]);
  }

  /** Runs an exec process to completion; returns its exit code. */
  async exec(id: string, execId: string, command: string[]): Promise<number> {
    const res = await this.containerd.ctr(
      this.namespace,
      ["tasks", "exec", "--exec-id", execId, id, ...command],
      { allowFailure: true },
    );
    return res.code;
  }

  /**
   * Resolves once the container's shell has its SIGTERM trap installed, so a SIGTERM
   * cannot arrive too early and be ignored by pid 1. The process must be the shell
   * itself: runc's init (a Go program, before it execs the shell) catches SIGTERM too.
   */
  async termHandlerInstalled(id: string): Promise<void> {
    const { pid } = await this.task(id);
    await eventually(`${id} (pid ${pid}) to trap SIGTERM`, async () => {
      const comm = (await Deno.readTextFile(`/proc/${pid}/comm`)).trim();
      const status = await Deno.readTextFile(`/proc/${pid}/status`);
      const caught = BigInt("0x" + (/^SigCgt:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? "0"));
      return comm === "sh" && (caught & (1n << 14n)) !== 0n; // bit 14 = signal 15, SIGTERM
    });
  }

  task(id: string): Promise<TaskInfo> {
    return this.client.getTask(this.namespace, id);
  }

  /** Deletes the task (if any) and the container. */
  async remove(id: string): Promise<void> {
    await this.containerd.ctr(this.namespace, ["tasks", "delete", "-f", id], {
      allowFailure: true,
    });
    await this.containerd.ctr(this.namespace, ["containers", "delete", id]);
  }

  close(): void {
    this.client.close();
  }
}

/** A sandbox command that exits with `code` on SIGTERM. */
export function exitOnTerm(code: number): string[] {
  return ["sh", "-c", `trap 'exit ${code}' TERM; sleep 100000 & wait`];
}

/** A sandbox started by startSandboxes: it exits `code` on SIGTERM (unless bare). */
export interface StartedSandbox {
  id: string;
  code: number;
  pid: number;
}

/**
 * Starts one sandbox per code, five at a time (ctr run takes ~80 ms each), each exiting
 * with its code on SIGTERM once its handler is in place; codes `bare` picks run a plain
 * sleep instead (for SIGKILL: 137).
 */
export async function startSandboxes(
  c: Containers,
  name: string,
  codes: number[],
  bare: (code: number) => boolean = () => false,
): Promise<StartedSandbox[]> {
  const out: StartedSandbox[] = [];
  for (let i = 0; i < codes.length; i += 5) {
    out.push(
      ...await Promise.all(
        codes.slice(i, i + 5).map(async (code) => {
          const id = uniqueId(`${name}${code}`);
          if (bare(code)) await c.run(id, ["sleep", "100000"]);
          else {
            await c.run(id, exitOnTerm(code));
            await c.termHandlerInstalled(id);
          }
          return { id, code, pid: (await c.task(id)).pid };
        }),
      ),
    );
  }
  return out;
}
