/**
 * Kubelet-style pods for tests: a private containerd with its CRI plugin configured for
 * this machine (no cgroups, no AppArmor, no CNI: pods use the node's network, pid and
 * ipc namespaces), the pause image in namespace k8s.io, and a minimal CRI client over
 * the project's own `runtime.v1` subset, on containerd's main gRPC socket.
 *
 * ```ts
 * const node = await CriNode.start();
 * try {
 *   const pod = await node.cri.runPod("web");
 *   // pod.id is the sandbox container's id in containerd namespace k8s.io
 * } finally {
 *   await node.stop(); // removes every pod, stops containerd, cleans up
 * }
 * ```
 *
 * @module
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import {
  ContainerConfig,
  ContainerState,
  NamespaceMode,
  type PodSandbox,
  PodSandboxConfig,
  type PodSandboxFilter,
  PodSandboxState,
  type PodSandboxStatusResponse,
  RuntimeServiceService,
  type StatusResponse,
} from "../../src/gen/cri/runtime/v1/api.ts";
import { GrpcContainerdClient } from "../../src/containerd/grpc_client.ts";
import { DeadlineExceededError } from "../../src/errors.ts";
import { grpcTarget, unaryCall } from "../../src/grpc/call.ts";
import { type ContainerdOptions, PrivateContainerd } from "./containerd.ts";
import { importImages } from "./containers.ts";
import { PAUSE_IMAGE } from "./image.ts";
import { eventually } from "./process.ts";

export { ContainerState, NamespaceMode, PodSandboxState };

/** The containerd namespace the CRI plugin keeps its containers in. */
export const CRI_NAMESPACE = "k8s.io";

/** @default 30_000 — deadline of each CRI call (RunPodSandbox takes ~55 ms unloaded). */
export const DEFAULT_CRI_TIMEOUT_MS = 30_000;

/** A pod as created by `CriClient.runPod`. */
export interface CriPod {
  /** The pod sandbox id (= the sandbox container's id in namespace k8s.io). */
  id: string;
  name: string;
  namespace: string;
  uid: string;
  attempt: number;
  /** The config it was run with (CreateContainer sends it again, as the kubelet does). */
  config: PodSandboxConfig;
}

/** An app container as `CriClient.createContainer` made it. */
export interface CriContainer {
  id: string;
  name: string;
  pod: CriPod;
}

export interface RunPodOptions {
  /** Kubernetes namespace of the pod. @default "psd-test" */
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Host directory for the pod's logs. @default none */
  logDirectory?: string;
  /** The CRI runtime handler (a RuntimeClass's handler). @default the runtime's default */
  runtimeHandler?: string;
  /** The pod's network: the node's (NODE) or its own (POD, set up by CNI). @default NODE */
  network?: NamespaceMode;
  /** The pod's hostname (its own network only). @default none */
  hostname?: string;
}

/**
 * The kubelet's pod sandbox calls, one method each, with a deadline on every call.
 * Failures reject with the typed errors of src/errors.ts (e.g. NotFoundError).
 */
export class CriClient {
  readonly #client: grpc.Client;
  readonly #timeoutMs: number;

  readonly #postMortem?: (needle: string) => Promise<string>;

  /** `postMortem`: what containerd can tell about a call that timed out (by a needle). */
  constructor(
    socket: string,
    options: { timeoutMs?: number; postMortem?: (needle: string) => Promise<string> } = {},
  ) {
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_CRI_TIMEOUT_MS;
    this.#postMortem = options.postMortem;
    this.#client = new grpc.Client(grpcTarget(socket), grpc.credentials.createInsecure());
  }

  #options(what: string) {
    return { what: `CRI ${what}`, timeoutMs: this.#timeoutMs };
  }

  /** The runtime's conditions (RuntimeReady, NetworkReady). */
  status(): Promise<StatusResponse> {
    return unaryCall(
      this.#client,
      RuntimeServiceService.status,
      { verbose: false },
      this.#options("Status"),
    );
  }

  /**
   * True once the CRI reports RuntimeReady, as the kubelet waits for. After a containerd
   * (re)start the socket answers before the CRI is initialised ("server is not initialized
   * yet"); Version answers early too.
   */
  async runtimeReady(): Promise<boolean> {
    const res = await this.status();
    return res.status?.conditions.some((c) => c.type === "RuntimeReady" && c.status) ?? false;
  }

  /**
   * RunPodSandbox as a kubelet would for a hostNetwork/hostPID/hostIPC pod. The pod's
   * name is `name` plus a random suffix and its uid is random, so runs never collide.
   */
  async runPod(name: string, options: RunPodOptions = {}): Promise<CriPod> {
    const pod = {
      name: `${name}-${crypto.randomUUID().slice(0, 8)}`,
      namespace: options.namespace ?? "psd-test",
      uid: crypto.randomUUID(),
      attempt: 0,
    };
    const network = options.network ?? NamespaceMode.NODE;
    // fromPartial: every field this call leaves unset gets its proto default.
    const config = PodSandboxConfig.fromPartial({
      metadata: pod,
      // Empty is allowed with the node's network namespace (the node's hostname is used).
      hostname: options.hostname ?? "",
      logDirectory: options.logDirectory ?? "",
      labels: options.labels ?? {},
      annotations: options.annotations ?? {},
      linux: {
        cgroupParent: "",
        securityContext: {
          namespaceOptions: {
            network,
            pid: NamespaceMode.NODE,
            // A pod of its own network keeps its own IPC, as most pods do.
            ipc: network === NamespaceMode.NODE ? NamespaceMode.NODE : NamespaceMode.POD,
            targetId: "",
          },
          privileged: false,
        },
      },
    });
    try {
      const res = await unaryCall(this.#client, RuntimeServiceService.runPodSandbox, {
        config,
        runtimeHandler: options.runtimeHandler ?? "",
      }, this.#options(`RunPodSandbox ${pod.namespace}/${pod.name}`));
      return { id: res.podSandboxId, ...pod, config };
    } catch (err) {
      // A RunPodSandbox that never answers: say where containerd was stuck.
      if (!(err instanceof DeadlineExceededError) || !this.#postMortem) throw err;
      throw new Error(`${err.message}\n${await this.#postMortem(pod.name)}`, { cause: err });
    }
  }

  /** CreateContainer as a kubelet does: an app container in `pod` (not started). */
  async createContainer(
    pod: CriPod,
    name: string,
    image: string,
    command: string[],
  ): Promise<CriContainer> {
    const res = await unaryCall(this.#client, RuntimeServiceService.createContainer, {
      podSandboxId: pod.id,
      config: ContainerConfig.fromPartial({
        metadata: { name, attempt: 0 },
        image: { image },
        command,
        linux: {
          securityContext: {
            namespaceOptions: pod.config.linux?.securityContext?.namespaceOptions,
          },
        },
      }),
      sandboxConfig: pod.config,
    }, this.#options(`CreateContainer ${name} in ${pod.name}`));
    return { id: res.containerId, name, pod };
  }

  async startContainer(id: string): Promise<void> {
    await unaryCall(
      this.#client,
      RuntimeServiceService.startContainer,
      { containerId: id },
      this.#options(`StartContainer ${id}`),
    );
  }

  async stopContainer(id: string, timeoutSecs = 0): Promise<void> {
    await unaryCall(
      this.#client,
      RuntimeServiceService.stopContainer,
      { containerId: id, timeout: timeoutSecs },
      this.#options(`StopContainer ${id}`),
    );
  }

  async removeContainer(id: string): Promise<void> {
    await unaryCall(
      this.#client,
      RuntimeServiceService.removeContainer,
      { containerId: id },
      this.#options(`RemoveContainer ${id}`),
    );
  }

  /** ContainerStatus with containerd's verbose info: the state and the process's pid. */
  async containerStatus(id: string): Promise<{ state: ContainerState; pid: number }> {
    const res = await unaryCall(
      this.#client,
      RuntimeServiceService.containerStatus,
      { containerId: id, verbose: true },
      this.#options(`ContainerStatus ${id}`),
    );
    if (!res.status) throw new TypeError(`CRI ContainerStatus ${id}: no status in the response`);
    const info = res.info["info"];
    return { state: res.status.state, pid: info ? Number(JSON.parse(info).pid ?? 0) : 0 };
  }

  /** `count` pods named `name-0`…, at most `concurrency` RunPodSandbox calls at a time. */
  async runPods(
    name: string,
    count: number,
    options: RunPodOptions & { concurrency?: number } = {},
  ): Promise<CriPod[]> {
    const pods: CriPod[] = [];
    let next = 0;
    const worker = async () => {
      while (next < count) {
        const i = next++;
        pods[i] = await this.runPod(`${name}-${i}`, options);
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 4, count) }, worker));
    return pods;
  }

  async stopPod(id: string): Promise<void> {
    await unaryCall(
      this.#client,
      RuntimeServiceService.stopPodSandbox,
      { podSandboxId: id },
      this.#options(`StopPodSandbox ${id}`),
    );
  }

  async removePod(id: string): Promise<void> {
    await unaryCall(
      this.#client,
      RuntimeServiceService.removePodSandbox,
      { podSandboxId: id },
      this.#options(`RemovePodSandbox ${id}`),
    );
  }

  /** PodSandboxStatus; `verbose` adds containerd's `info` JSON (with the sandbox's pid). */
  podStatus(id: string, options: { verbose?: boolean } = {}): Promise<PodSandboxStatusResponse> {
    return unaryCall(
      this.#client,
      RuntimeServiceService.podSandboxStatus,
      { podSandboxId: id, verbose: options.verbose ?? false },
      this.#options(`PodSandboxStatus ${id}`),
    );
  }

  /** The pod's state in the CRI's own view. */
  async podState(id: string): Promise<PodSandboxState> {
    const res = await this.podStatus(id);
    if (!res.status) throw new TypeError(`CRI PodSandboxStatus ${id}: no status in the response`);
    return res.status.state;
  }

  /** The sandbox process's pid, from containerd's verbose `info` (0 once it exited). */
  async podPid(id: string): Promise<number> {
    const res = await this.podStatus(id, { verbose: true });
    const info = res.info["info"];
    if (!info) throw new TypeError(`CRI PodSandboxStatus ${id}: no "info" in the verbose response`);
    return Number(JSON.parse(info).pid ?? 0);
  }

  async listPods(filter?: Partial<PodSandboxFilter>): Promise<PodSandbox[]> {
    const res = await unaryCall(
      this.#client,
      RuntimeServiceService.listPodSandbox,
      { filter: filter && { id: "", state: undefined, labelSelector: {}, ...filter } },
      this.#options("ListPodSandbox"),
    );
    return res.items;
  }

  /** Stops and removes every pod the CRI knows (StopPodSandbox before Remove, as the kubelet does). */
  async removeAllPods(): Promise<void> {
    const pods = await this.listPods();
    await Promise.all(pods.map(async (p) => {
      await this.stopPod(p.id);
      await this.removePod(p.id);
    }));
  }

  close(): void {
    this.#client.close();
  }
}

/** Resolves once the CRI on `socket` reports RuntimeReady. */
async function criReady(socket: string): Promise<void> {
  const cri = new CriClient(socket, { timeoutMs: 1_000 });
  try {
    await eventually(`the CRI on ${socket} to report RuntimeReady`, () => cri.runtimeReady(), {
      timeoutMs: 30_000,
      intervalMs: 50,
    });
  } finally {
    cri.close();
  }
}

/**
 * A private containerd with the CRI plugin, the pause image imported into k8s.io, a
 * CRI client and a containerd client (namespace k8s.io calls) on its socket.
 */
export class CriNode {
  readonly cri: CriClient;
  readonly client: GrpcContainerdClient;

  private constructor(readonly containerd: PrivateContainerd, readonly cniDir: string) {
    this.cri = new CriClient(containerd.socket, {
      postMortem: (needle) => containerd.postMortem(needle),
    });
    this.client = new GrpcContainerdClient({ address: containerd.socket });
  }

  /** Starts containerd with the CRI plugin and imports the pause image; `extraConfig` is appended. */
  static async start(
    options: Pick<ContainerdOptions, "extraConfig" | "version"> & {
      /** The image the CRI runs as every pod's sandbox. @default PAUSE_IMAGE */
      sandboxImage?: string;
      /**
       * A CNI network for pods with their own network namespace (a .conflist's JSON) and
       * where its plugins are. @default none: only pods on the node's network
       */
      cni?: { conflist: string; binDir: string };
    } = {},
  ): Promise<CriNode> {
    const cniDir = await Deno.makeTempDir({ prefix: "psd-cni-" });
    const confDir = join(cniDir, "conf");
    const binDir = options.cni?.binDir ?? join(cniDir, "bin");
    await Deno.mkdir(confDir);
    if (!options.cni) await Deno.mkdir(binDir);
    else await Deno.writeTextFile(join(confDir, "10-psd.conflist"), options.cni.conflist);
    let containerd: PrivateContainerd | undefined;
    let node: CriNode | undefined;
    try {
      containerd = await PrivateContainerd.start({
        extraConfig: options.extraConfig,
        version: options.version,
        cri: {
          sandboxImage: options.sandboxImage ?? PAUSE_IMAGE,
          cniConfDir: confDir,
          cniBinDir: binDir,
        },
        // Every (re)boot waits for the CRI itself, not only containerd's socket.
        readiness: criReady,
      });
      await importImages(containerd, CRI_NAMESPACE);
      node = new CriNode(containerd, cniDir);
      return node;
    } catch (err) {
      node?.cri.close();
      node?.client.close();
      await containerd?.stop();
      await Deno.remove(cniDir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  get socket(): string {
    return this.containerd.socket;
  }

  /** containerd's view of a pod's sandbox task (NotFoundError once the CRI deleted it). */
  task(id: string) {
    return this.client.getTask(CRI_NAMESPACE, id);
  }

  /** Removes every pod through the CRI, then stops containerd (PrivateContainerd.stop cleans up the rest). */
  async stop(): Promise<void> {
    try {
      await this.cri.removeAllPods();
    } catch (err) {
      // containerd's own clean-up below still removes tasks and containers.
      console.error(`CRI clean-up failed: ${err}`);
    } finally {
      this.cri.close();
      this.client.close();
      await this.containerd.stop();
      await Deno.remove(this.cniDir, { recursive: true }).catch(() => {});
    }
  }
}
