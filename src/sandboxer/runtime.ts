/**
 * Runs and removes a pod sandbox in containerd the way containerd's own `podsandbox`
 * controller does (its Start and Shutdown): pause image, snapshot, OCI spec, the CRI's
 * sandbox files and shm, container, task. No policy: what to start and when is the
 * controller's; this module only does it, and undoes every step of a start that fails.
 *
 * @module
 */
import { join } from "node:path";
import {
  CancelledError,
  DeadlineExceededError,
  FailedPreconditionError,
  GrpcCode,
  InvalidArgumentError,
  NotFoundError,
  RemoteError,
  StatusError,
  UnavailableError,
} from "../errors.ts";
import type { AnyValue, Mount, SandboxRuntimeClient } from "../containerd/types.ts";
import type { PodSandboxConfig } from "../gen/cri/runtime/v1/api.ts";
import { validateIdentifier } from "../ids.ts";
import { logger } from "../log.ts";
import {
  type CriDirs,
  criDirs,
  DEFAULT_NODE_FILES,
  makeSandboxDirs,
  mountShm,
  type NodeFiles,
  removeSandboxDirs,
  sandboxPaths,
  usesHostIpc,
  writeSandboxFiles,
} from "./files.ts";
import { normalizeImageRef, resolveSandboxImage } from "./image.ts";
import { type HostMounts, UtilLinuxMounts } from "./mounts.ts";
import { readSnapshotUserFiles } from "./rootfs.ts";
import { seccompChoice } from "./seccomp.ts";
import { buildSandboxSpec, type SandboxHost } from "./spec.ts";
import { detectHost } from "./host.ts";
import { needsUserFiles, sandboxUserString, type UserFiles } from "./user.ts";

const log = logger("sandboxer");

/** containerd's CRI marks every pod sandbox container with this label (value "sandbox"). */
export const CRI_KIND_LABEL = "io.cri-containerd.kind";
/** podsandboxd marks the sandbox containers it created (and only it removes them). */
export const OWNED_LABEL = "io.podsandboxd.owned";
/** containerd's lease label that makes a lease expire (RFC 3339). */
const LEASE_EXPIRE_LABEL = "containerd.io/gc.expire";
/** A start's own lease outlives any start; if the agent dies mid-way, GC takes the leftovers. */
const START_LEASE_TTL_MS = 60 * 60 * 1000;
/** containerd refuses labels whose key and value exceed this many bytes together. */
const MAX_LABEL_BYTES = 4096;

/** @default "k8s.io" — the namespace containerd's CRI keeps pods in. */
export const DEFAULT_NAMESPACE = "k8s.io";
/** @default "overlayfs" */
export const DEFAULT_SNAPSHOTTER = "overlayfs";
/** @default 30_000 — how long a SIGKILLed sandbox task may take to exit. */
export const DEFAULT_KILL_TIMEOUT_MS = 30_000;
/** @default 10_000 — deadline of each step that undoes a failed start. */
const UNDO_TIMEOUT_MS = 10_000;

export interface SandboxRuntimeOptions {
  client: SandboxRuntimeClient;
  /** The pause image: the same reference as containerd's `pinned_images.sandbox`. */
  pauseImage: string;
  /** @default DEFAULT_NAMESPACE */
  namespace?: string;
  /** Snapshotter of sandboxes whose request names none. @default DEFAULT_SNAPSHOTTER */
  snapshotter?: string;
  /** The CRI's root and state directories. @default criDirs("/var/lib/containerd", "/run/containerd") */
  criDirs?: CriDirs;
  mounts?: HostMounts;
  nodeFiles?: NodeFiles;
  /** Overrides of what is detected about the node (tests; containerd config such as restrict_oom_score_adj). */
  host?: Partial<SandboxHost>;
  /** containerd's restrict_oom_score_adj: never below the agent's own OOM score. @default false */
  restrictOomScoreAdj?: boolean;
  /** @default DEFAULT_KILL_TIMEOUT_MS */
  killTimeoutMs?: number;
}

/** What Start needs from the controller's record of the sandbox (Create's request). */
export interface StartSandboxRequest {
  id: string;
  /** Create's options: the CRI's PodSandboxConfig. */
  config: PodSandboxConfig;
  /** Create's netns_path; "" for a host-network pod. */
  netnsPath: string;
  /** The handler's runtime (Create's sandbox.runtime): e.g. io.containerd.runc.v2 with runc's options. */
  runtime: { name: string; options?: AnyValue };
  /** A containerd lease to make the snapshot under; without one the start uses its own, short-lived. */
  lease?: string;
  /** Patterns of pod annotations passed to the runtime (the handler's pod_annotations). */
  podAnnotations?: string[];
  /** The handler's snapshotter. @default the runtime's `snapshotter` option */
  snapshotter?: string;
}

/** What Start answers (containerd's ControllerStartResponse fields). */
export interface StartedSandbox {
  id: string;
  /** Host pid of the pause process. */
  pid: number;
  /** The container's creation time (RFC 3339). */
  createdAt: string;
  /** As containerd's own controller returns: oci_runtime_type, selinux_label. */
  labels: Record<string, string>;
}

/** The part of SandboxRuntime the controller calls (fake it in controller tests). */
export interface SandboxRunner {
  start(request: StartSandboxRequest, options?: { signal?: AbortSignal }): Promise<StartedSandbox>;
  shutdown(id: string, options?: { signal?: AbortSignal }): Promise<void>;
  /** Unmounts the sandbox's shm (what Stop cleans up once the pause is dead); idempotent. */
  releaseShm(id: string): Promise<void>;
}

/** A call whose outcome containerd may not have told us: it may have happened. */
function outcomeUnknown(err: unknown): boolean {
  return err instanceof CancelledError || err instanceof DeadlineExceededError ||
    err instanceof UnavailableError ||
    (err instanceof RemoteError && err.code === GrpcCode.UNKNOWN) || !(err instanceof StatusError);
}

function ignoreNotFound(err: unknown): void {
  if (!(err instanceof NotFoundError)) throw err;
}

function byteLength(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** Pod labels over the image's (minus containerd's and the CRI's reserved ones), then the kind. */
export function sandboxLabels(
  podLabels: Record<string, string>,
  imageLabels: Record<string, string>,
): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(imageLabels)) {
    if (k.startsWith("containerd.io/") || k.startsWith("io.cri-containerd")) continue;
    if (byteLength(k) + byteLength(v) > MAX_LABEL_BYTES) continue;
    labels[k] = v;
  }
  Object.assign(labels, podLabels);
  // The kind label without the CRI's metadata extension: containerd's restart then neither
  // recovers the pod as its own nor wipes its sandbox directories.
  labels[CRI_KIND_LABEL] = "sandbox";
  labels[OWNED_LABEL] = "true";
  return labels;
}

/** Undo steps of a start, run in reverse when it fails. */
class Undo {
  readonly #steps: Array<{ what: string; run: (signal: AbortSignal) => Promise<void> }> = [];

  push(what: string, run: (signal: AbortSignal) => Promise<void>): void {
    this.#steps.push({ what, run });
  }

  /** Runs the steps, last first, each with a fresh deadline; returns what could not be undone. */
  async run(): Promise<string[]> {
    const failed: string[] = [];
    for (const step of this.#steps.reverse()) {
      try {
        await step.run(AbortSignal.timeout(UNDO_TIMEOUT_MS));
      } catch (err) {
        failed.push(`${step.what}: ${err instanceof Error ? err.message : err}`);
      }
    }
    this.#steps.length = 0;
    return failed;
  }
}

function checkAborted(signal: AbortSignal | undefined, id: string, step: string): void {
  if (!signal?.aborted) return;
  const reason = signal.reason;
  throw reason instanceof StatusError
    ? reason
    : new CancelledError(`start of sandbox ${id} cancelled before ${step}`, { cause: reason });
}

/** Runs and removes pod sandboxes in containerd. */
export class SandboxRuntime implements SandboxRunner {
  readonly #client: SandboxRuntimeClient;
  readonly #pauseImage: string;
  readonly #namespace: string;
  readonly #snapshotter: string;
  readonly #dirs: CriDirs;
  readonly #mounts: HostMounts;
  readonly #nodeFiles: NodeFiles;
  readonly #hostOverrides: Partial<SandboxHost>;
  readonly #restrictOom: boolean;
  readonly #killTimeoutMs: number;
  #host?: Promise<SandboxHost>;

  constructor(options: SandboxRuntimeOptions) {
    this.#client = options.client;
    this.#pauseImage = normalizeImageRef(options.pauseImage);
    this.#namespace = options.namespace ?? DEFAULT_NAMESPACE;
    this.#snapshotter = options.snapshotter ?? DEFAULT_SNAPSHOTTER;
    this.#dirs = options.criDirs ?? criDirs("/var/lib/containerd", "/run/containerd");
    this.#mounts = options.mounts ?? new UtilLinuxMounts();
    this.#nodeFiles = options.nodeFiles ?? DEFAULT_NODE_FILES;
    this.#hostOverrides = options.host ?? {};
    this.#restrictOom = options.restrictOomScoreAdj ?? false;
    this.#killTimeoutMs = options.killTimeoutMs ?? DEFAULT_KILL_TIMEOUT_MS;
  }

  /** The pause image reference, normalised ("docker.io/library/pause:3.10"). */
  get pauseImage(): string {
    return this.#pauseImage;
  }

  /** Where sandbox `id`'s files are (hostname, hosts, resolv.conf, shm). */
  paths(id: string) {
    return sandboxPaths(this.#dirs, id);
  }

  #detectHost(): Promise<SandboxHost> {
    this.#host ??= detectHost({ restrictOomScoreAdj: this.#restrictOom }).then((h) => ({
      ...h,
      ...this.#hostOverrides,
    }));
    return this.#host;
  }

  /**
   * Starts sandbox `request.id`: resolves the pause image, prepares its snapshot, writes
   * the sandbox's files and shm, creates the container and its task and starts it. Any
   * failure (the signal firing too) undoes what was done, last first, and rejects with
   * the first error: FailedPreconditionError for a missing pause image, the call's
   * typed error otherwise.
   */
  async start(
    request: StartSandboxRequest,
    options: { signal?: AbortSignal } = {},
  ): Promise<StartedSandbox> {
    const { id, config } = request;
    validateIdentifier("sandbox id", id);
    if (!request.runtime.name) throw new InvalidArgumentError(`sandbox ${id}: no runtime name`);
    const ns = this.#namespace;
    const snapshotter = request.snapshotter || this.#snapshotter;
    const signal = options.signal;
    // Reads end early on the signal. Calls that make something never get it: cancelled
    // on the wire, containerd may still complete them after our undo ran, leaving what
    // the undo missed. The signal is checked between steps instead (one call's delay).
    const call = { signal };
    const uncancelled = {};
    const undo = new Undo();
    const paths = this.paths(id);
    const started = performance.now();
    try {
      // A taken id is refused before anything is made: the CRI's directories of a sandbox
      // are named by its id alone, so our undo would remove the other one's files.
      const existing = await this.#client.getContainer(ns, id, call).catch((err) => {
        ignoreNotFound(err);
        return undefined;
      });
      if (existing) {
        throw new FailedPreconditionError(
          `container ${ns}/${id} already exists: a sandbox id is started once`,
        );
      }
      checkAborted(signal, id, "resolving the pause image");
      const host = await this.#detectHost();
      const image = await resolveSandboxImage(this.#client, ns, this.#pauseImage, {
        ...call,
        arch: host.arch,
      });
      const seccomp = seccompChoice(config.linux?.securityContext, host.seccompEnabled);
      const seccompProfile = seccomp.kind === "localhost"
        ? await Deno.readTextFile(seccomp.path).catch((err) => {
          throw new InvalidArgumentError(
            `cannot read seccomp profile ${seccomp.path}: ${err.message}`,
            { cause: err },
          );
        })
        : undefined;

      // Made under a lease, so containerd's GC cannot take the snapshot before a
      // container holds it; containerd's own client does the same.
      let lease = request.lease;
      if (!lease) {
        const ownLease = `psd-start-${crypto.randomUUID().replaceAll("-", "").slice(0, 16)}`;
        const expires = new Date(Date.now() + START_LEASE_TTL_MS).toISOString();
        checkAborted(signal, id, "creating its lease");
        await this.#create(
          undo,
          `lease ${ownLease}`,
          () =>
            this.#client.createLease(ns, ownLease, {
              [LEASE_EXPIRE_LABEL]: expires,
              "io.podsandboxd.sandbox": id,
            }, uncancelled),
          // sync: what only the lease held (a snapshot whose removal we missed) goes too.
          (s) =>
            this.#client.deleteLease(ns, ownLease, { signal: s, sync: true }).catch(ignoreNotFound),
        );
        lease = ownLease;
      }

      checkAborted(signal, id, "preparing its snapshot");
      let rootfs: Mount[] = [];
      const snapshotLabels = Object.fromEntries(
        Object.entries(config.annotations ?? {}).filter(([k]) =>
          k === "containerd.io/snapshot.ref" || k.startsWith("containerd.io/snapshot/")
        ),
      );
      await this.#create(
        undo,
        `snapshot ${snapshotter}/${id}`,
        async () => {
          try {
            rootfs = await this.#client.prepareSnapshot(
              ns,
              snapshotter,
              id,
              image.chainId,
              snapshotLabels,
              { ...uncancelled, lease },
            );
          } catch (err) {
            if (err instanceof NotFoundError && /lease/i.test(err.message)) {
              throw new FailedPreconditionError(
                `containerd lease ${lease} does not exist in namespace ${ns}`,
                { cause: err },
              );
            }
            if (err instanceof NotFoundError) {
              throw new FailedPreconditionError(
                `pause image ${image.name} is not unpacked for snapshotter ${snapshotter} ` +
                  `(no snapshot ${image.chainId}): pull it for that snapshotter ("crictl pull ${image.name}")`,
                { cause: err },
              );
            }
            throw err;
          }
        },
        (s) =>
          this.#client.removeSnapshot(ns, snapshotter, id, { signal: s }).catch(ignoreNotFound),
      );

      const user = sandboxUserString(
        config.linux?.securityContext?.runAsUser,
        config.linux?.securityContext?.runAsGroup,
        image.config.user,
      );
      // From here on files may exist in the sandbox's directories.
      undo.push(`sandbox directories of ${id}`, () => removeSandboxDirs(paths, this.#mounts));
      let userFiles: UserFiles = {};
      if (needsUserFiles(user)) {
        checkAborted(signal, id, "reading its image's user files");
        userFiles = await readSnapshotUserFiles(
          rootfs,
          join(paths.stateDir, "rootfs-lookup"),
          this.#mounts,
        );
      }
      const spec = buildSandboxSpec({
        id,
        namespace: ns,
        config,
        image: image.config,
        imageName: image.name,
        netnsPath: request.netnsPath,
        paths: { shm: paths.shm, resolvConf: paths.resolvConf },
        podAnnotations: request.podAnnotations,
        userFiles,
        seccompProfile,
        host,
      });

      checkAborted(signal, id, "writing its files");
      await makeSandboxDirs(paths);
      await writeSandboxFiles(paths, config, this.#nodeFiles);
      if (!usesHostIpc(config)) await mountShm(paths, this.#mounts);

      checkAborted(signal, id, "creating its container");
      let createdAt = "";
      await this.#create(undo, `container ${id}`, async () => {
        const record = await this.#client.createContainer(ns, {
          id,
          labels: sandboxLabels(config.labels ?? {}, image.config.labels ?? {}),
          image: image.name,
          runtime: request.runtime,
          spec,
          snapshotter,
          snapshotKey: id,
        }, { ...uncancelled, lease });
        if (!record.createdAt) {
          throw new TypeError(`containerd created container ${id} without a creation time`);
        }
        createdAt = record.createdAt;
      }, (s) => this.#client.deleteContainer(ns, id, { signal: s }).catch(ignoreNotFound));

      checkAborted(signal, id, "creating its task");
      await this.#create(
        undo,
        `task ${id}`,
        () => this.#client.createTask(ns, id, rootfs, { ...uncancelled, lease }),
        (s) => this.#deleteTask(id, s),
      );
      checkAborted(signal, id, "starting its task");
      const { pid } = await this.#client.startTask(ns, id, uncancelled);
      // A caller that gave up meanwhile will not clean up after us (the CRI never does).
      checkAborted(signal, id, "answering");

      if (!request.lease) {
        // The container now holds the snapshot; the lease only kept it until then.
        await this.#client.deleteLease(ns, lease, {}).catch((err) =>
          log.warn("could not delete lease {lease} of sandbox {id} (it expires): {error}", {
            lease,
            id,
            error: err instanceof Error ? err.message : String(err),
          })
        );
      }
      log.debug("started sandbox {id} (pid {pid}) in {ms} ms", {
        id,
        pid,
        ms: Math.round(performance.now() - started),
      });
      return {
        id,
        pid,
        createdAt,
        labels: { oci_runtime_type: request.runtime.name, selinux_label: "" },
      };
    } catch (err) {
      const left = await undo.run();
      if (left.length) {
        log.error(
          "start of sandbox {id} failed ({error}) and its cleanup left: {left}; shutdown removes them",
          { id, error: err instanceof Error ? err.message : String(err), left: left.join("; ") },
        );
      }
      throw err;
    }
  }

  /**
   * Runs a step that makes something; its undo is registered when it succeeds, and also
   * when its outcome is unknown (cancelled, timed out, connection lost: it may have
   * happened). A definite refusal (e.g. ALREADY_EXISTS) registers nothing: what exists
   * then is not ours to remove.
   */
  async #create(
    undo: Undo,
    what: string,
    make: () => Promise<unknown>,
    remove: (signal: AbortSignal) => Promise<void>,
  ): Promise<void> {
    try {
      await make();
    } catch (err) {
      if (outcomeUnknown(err)) undo.push(what, remove);
      throw err;
    }
    undo.push(what, remove);
  }

  /** Kills the task (SIGKILL, all its processes), waits for its exit and deletes it. */
  async #deleteTask(id: string, signal?: AbortSignal): Promise<void> {
    const ns = this.#namespace;
    const bounded = AbortSignal.any([
      ...(signal ? [signal] : []),
      AbortSignal.timeout(this.#killTimeoutMs),
    ]);
    try {
      await this.#client.killTask(ns, id, 9, { all: true, signal: bounded });
    } catch (err) {
      // Gone, or already exited: nothing to kill.
      if (!(err instanceof NotFoundError) && !(err instanceof FailedPreconditionError)) throw err;
    }
    try {
      await this.#client.waitTask(ns, id, { signal: bounded });
    } catch (err) {
      if (!(err instanceof NotFoundError)) {
        if (bounded.aborted && !signal?.aborted) {
          throw new DeadlineExceededError(
            `task of sandbox ${id} did not exit within ${this.#killTimeoutMs} ms of SIGKILL`,
            { cause: err },
          );
        }
        throw err;
      }
    }
    await this.#client.deleteTask(ns, id, { signal }).catch(ignoreNotFound);
  }

  /**
   * Removes sandbox `id`: its task (killed first), container, snapshot, shm and files.
   * Idempotent: what is gone already is skipped. Refuses (FailedPreconditionError) a
   * container that podsandboxd did not create.
   */
  async shutdown(id: string, options: { signal?: AbortSignal } = {}): Promise<void> {
    validateIdentifier("sandbox id", id);
    const ns = this.#namespace;
    const signal = options.signal;
    const container = await this.#client.getContainer(ns, id, { signal }).catch((err) => {
      ignoreNotFound(err);
      return undefined;
    });
    if (container && container.labels[OWNED_LABEL] !== "true") {
      throw new FailedPreconditionError(
        `container ${ns}/${id} was not created by podsandboxd (no ${OWNED_LABEL} label): not removing it`,
      );
    }
    await this.#deleteTask(id, signal);
    if (container) {
      await this.#client.deleteContainer(ns, id, { signal }).catch(ignoreNotFound);
    }
    // A start that failed half-way may have left the snapshot without its container.
    const snapshotter = container?.snapshotter || this.#snapshotter;
    await this.#client.removeSnapshot(ns, snapshotter, container?.snapshotKey || id, { signal })
      .catch(ignoreNotFound);
    await removeSandboxDirs(this.paths(id), this.#mounts);
  }

  async releaseShm(id: string): Promise<void> {
    validateIdentifier("sandbox id", id);
    await this.#mounts.unmountAll(this.paths(id).shm);
  }
}
