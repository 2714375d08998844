/**
 * The OCI runtime spec of a pod sandbox's pause container, built as containerd's CRI
 * builds it (containerd v2.1, `podsandbox` controller): containerd's default Linux spec,
 * then the pod's options. Pure: everything it needs from the host, the image and the
 * files is passed in, so it is tested table-driven.
 *
 * @module
 */
import { posix } from "node:path";
import { InvalidArgumentError, UnimplementedError } from "../errors.ts";
import { NamespaceMode, type PodSandboxConfig } from "../gen/cri/runtime/v1/api.ts";
import { defaultLinuxSpec, type OciMount, type OciNamespaceType, type OciSpec } from "./oci.ts";
import { defaultSeccompProfile, parseSeccompProfile, seccompChoice } from "./seccomp.ts";
import { resolveUser, sandboxUserString, type UserFiles } from "./user.ts";

/** The annotations containerd's CRI puts on every sandbox spec (read by shims and tools). */
export const CRI_ANNOTATIONS = {
  containerType: "io.kubernetes.cri.container-type",
  sandboxId: "io.kubernetes.cri.sandbox-id",
  sandboxNamespace: "io.kubernetes.cri.sandbox-namespace",
  sandboxUid: "io.kubernetes.cri.sandbox-uid",
  sandboxName: "io.kubernetes.cri.sandbox-name",
  sandboxLogDirectory: "io.kubernetes.cri.sandbox-log-directory",
  sandboxImageName: "io.kubernetes.cri.podsandbox.image-name",
  sandboxCpuPeriod: "io.kubernetes.cri.sandbox-cpu-period",
  sandboxCpuQuota: "io.kubernetes.cri.sandbox-cpu-quota",
  sandboxCpuShares: "io.kubernetes.cri.sandbox-cpu-shares",
  sandboxMemory: "io.kubernetes.cri.sandbox-memory",
} as const;

/** The pause process's OOM score: the node kills almost anything before a pod's sandbox. */
export const SANDBOX_OOM_SCORE_ADJ = -998;
/** CPU shares of the sandbox cgroup (the pause process needs next to none). */
export const SANDBOX_CPU_SHARES = 2;

/** What an image config contributes (OCI image config `config` object, our names). */
export interface ImageConfig {
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
  labels?: Record<string, string>;
}

/** Everything the spec of sandbox `id` is made from. */
export interface SandboxSpecInput {
  id: string;
  /** containerd namespace (for the default cgroup path). */
  namespace: string;
  config: PodSandboxConfig;
  image: ImageConfig;
  /** The pause image's name, for the `podsandbox.image-name` annotation. */
  imageName: string;
  /** The pod's network namespace; "" for a host-network pod. */
  netnsPath: string;
  /** Host paths bound into the sandbox. */
  paths: { shm: string; resolvConf: string };
  /** Patterns (path.Match globs) of pod annotations passed to the runtime. */
  podAnnotations?: readonly string[];
  /** The image's /etc/passwd and /etc/group, when the user needs them (see needsUserFiles). */
  userFiles?: UserFiles;
  /** The Localhost seccomp profile file's text, when the pod asks for one. */
  seccompProfile?: string;
  host: SandboxHost;
}

/** Facts of the node the spec depends on. */
export interface SandboxHost {
  /** Go's architecture name: amd64, arm64. */
  arch: string;
  kernel: { major: number; minor: number };
  seccompEnabled: boolean;
  selinuxEnabled: boolean;
  /** The process itself runs in a user namespace (no unprivileged ICMP then). */
  inUserNamespace: boolean;
  /** containerd 2.x's enable_unprivileged_ports (default true). */
  enableUnprivilegedPorts: boolean;
  /** containerd 2.x's enable_unprivileged_icmp (default true). */
  enableUnprivilegedIcmp: boolean;
  /**
   * restrict_oom_score_adj: the lowest OOM score the sandbox may have (the agent's own);
   * undefined to not restrict.
   */
  minOomScoreAdj?: number;
}

/** The cgroup path of sandbox `id` under `parent`: systemd's slice:prefix:name form for slices. */
export function cgroupsPath(parent: string, id: string): string {
  const base = posix.basename(parent);
  if (base.endsWith(".slice")) return `${base}:cri-containerd:${id}`;
  return posix.join(parent, id);
}

/** The contents of the sandbox's resolv.conf from the pod's DNS config. */
export function resolvConf(dns: { servers: string[]; searches: string[]; options: string[] }) {
  let out = "";
  if (dns.searches.length) out += `search ${dns.searches.join(" ")}\n`;
  for (const server of dns.servers) out += `nameserver ${server}\n`;
  if (dns.options.length) out += `options ${dns.options.join(" ")}\n`;
  return out;
}

/** Go's path.Match: `*` and `?` never match "/", `[...]` classes, `\` escapes. */
export function globMatch(pattern: string, name: string): boolean {
  let re = "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "\\" && i + 1 < pattern.length) re += escapeRe(pattern[++i]);
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) return false; // a malformed pattern matches nothing, as Go reports ErrBadPattern
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith("^")) cls = "^" + cls.slice(1).replace(/[\]\\]/g, "\\$&");
      else cls = cls.replace(/[\]\\^]/g, "\\$&");
      re += `(?!/)[${cls}]`;
      i = end;
    } else re += escapeRe(c);
  }
  return new RegExp(re + "$", "s").test(name);
}

function escapeRe(c: string): string {
  return c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function withoutNamespace(spec: OciSpec, type: OciNamespaceType): void {
  spec.linux.namespaces = spec.linux.namespaces.filter((n) => n.type !== type);
}

/** Validates an SELinux level as containerd does, though labels are applied only with SELinux. */
function checkSelinuxLevel(level: string): void {
  if (level === "") return;
  const re = /^s\d(-s\d)??(:c\d{1,4}(\.c\d{1,4})?(,c\d{1,4}(\.c\d{1,4})?)*)?$/;
  if (!re.test(level)) {
    throw new InvalidArgumentError(
      `the format of SELinux level ${JSON.stringify(level)} is not correct`,
    );
  }
}

/** Builds the sandbox's OCI spec; InvalidArgumentError names what in the config is wrong. */
export function buildSandboxSpec(input: SandboxSpecInput): OciSpec {
  const { id, config, image, host } = input;
  const linux = config.linux;
  const sc = linux?.securityContext;
  const ns = sc?.namespaceOptions;
  const spec = defaultLinuxSpec(input.namespace, id);

  // No /run tmpfs; no default seccomp/AppArmor and no rlimits (containerd/cri#515).
  spec.mounts = spec.mounts.filter((m) => m.destination !== "/run");
  delete spec.process.rlimits;
  spec.root = { path: "rootfs", readonly: true };
  // containerd merges the image's env into the default spec's (empty) one: entries
  // without "=" only unset defaults, so they drop out.
  const env = (image.env ?? []).filter((e) => e.includes("="));
  if (env.length) spec.process.env = env;
  if (image.workingDir) spec.process.cwd = image.workingDir;
  const args = [...(image.entrypoint ?? []), ...(image.cmd ?? [])];
  if (!args.length) {
    throw new InvalidArgumentError(
      `pause image ${input.imageName} has neither entrypoint nor cmd: it cannot run`,
    );
  }
  spec.process.args = args;

  if (config.hostname) {
    if (ns?.network === NamespaceMode.NODE) {
      throw new InvalidArgumentError(
        `hostname ${
          JSON.stringify(config.hostname)
        } needs the pod's own UTS namespace: a host-network pod takes the node's`,
      );
    }
    spec.hostname = config.hostname;
  }
  if (linux?.cgroupParent) spec.linux.cgroupsPath = cgroupsPath(linux.cgroupParent, id);

  // Namespaces: the CRI's network namespace, or the node's (which takes its UTS too).
  if (ns?.network === NamespaceMode.NODE) {
    withoutNamespace(spec, "network");
    withoutNamespace(spec, "uts");
  } else {
    if (!input.netnsPath) {
      throw new InvalidArgumentError(
        "the pod has its own network namespace but no netns path was given",
      );
    }
    spec.linux.namespaces = spec.linux.namespaces.map((n) =>
      n.type === "network" ? { type: "network", path: input.netnsPath } : n
    );
  }
  if (ns?.pid === NamespaceMode.NODE) withoutNamespace(spec, "pid");
  if (ns?.ipc === NamespaceMode.NODE) withoutNamespace(spec, "ipc");
  const userns = ns?.usernsOptions;
  if (userns) {
    if (userns.mode === NamespaceMode.NODE) {
      if (userns.uids.length || userns.gids.length) {
        throw new InvalidArgumentError("user namespace mode NODE takes no uid/gid mappings");
      }
      withoutNamespace(spec, "user");
    } else if (userns.mode === NamespaceMode.POD) {
      throw new UnimplementedError(
        "pods with their own user namespace (userns mode POD) are not supported by podsandboxd yet",
      );
    } else {
      throw new InvalidArgumentError(`unsupported user namespace mode ${userns.mode}`);
    }
  }

  // /dev/shm and resolv.conf from the CRI's sandbox directories (the node's /dev/shm for
  // host IPC), read-only; nosuid,nodev,noexec always (a user namespace needs them).
  const bind = (source: string, destination: string): OciMount => ({
    destination,
    type: "bind",
    source,
    options: ["rbind", "ro", "nosuid", "nodev", "noexec"],
  });
  spec.mounts = spec.mounts.filter((m) => m.destination !== "/dev/shm");
  spec.mounts.push(
    bind(ns?.ipc === NamespaceMode.NODE ? "/dev/shm" : input.paths.shm, "/dev/shm"),
    bind(input.paths.resolvConf, "/etc/resolv.conf"),
  );

  const selinux = sc?.selinuxOptions;
  checkSelinuxLevel(selinux?.level ?? "");
  if (host.selinuxEnabled) {
    throw new UnimplementedError(
      "SELinux is enabled on this node: podsandboxd does not allocate SELinux labels for sandboxes",
    );
  }

  const sysctls: Record<string, string> = { ...(linux?.sysctls ?? {}) };
  if (ns?.network !== NamespaceMode.NODE) {
    if (host.enableUnprivilegedPorts && !("net.ipv4.ip_unprivileged_port_start" in sysctls)) {
      sysctls["net.ipv4.ip_unprivileged_port_start"] = "0";
    }
    if (
      host.enableUnprivilegedIcmp && !("net.ipv4.ping_group_range" in sysctls) &&
      !host.inUserNamespace
    ) {
      sysctls["net.ipv4.ping_group_range"] = "0 2147483647";
    }
  }
  if (Object.keys(sysctls).length) spec.linux.sysctl = sysctls;

  spec.linux.resources.cpu = { shares: SANDBOX_CPU_SHARES };
  const annotations: Record<string, string> = {};
  const res = linux?.resources;
  if (res) {
    annotations[CRI_ANNOTATIONS.sandboxCpuPeriod] = String(res.cpuPeriod);
    annotations[CRI_ANNOTATIONS.sandboxCpuQuota] = String(res.cpuQuota);
    annotations[CRI_ANNOTATIONS.sandboxCpuShares] = String(res.cpuShares);
    annotations[CRI_ANNOTATIONS.sandboxMemory] = String(res.memoryLimitInBytes);
  }
  spec.process.oomScoreAdj = host.minOomScoreAdj === undefined
    ? SANDBOX_OOM_SCORE_ADJ
    : Math.max(SANDBOX_OOM_SCORE_ADJ, host.minOomScoreAdj);

  for (const [k, v] of Object.entries(config.annotations ?? {})) {
    if ((input.podAnnotations ?? []).some((p) => globMatch(p, k))) annotations[k] = v;
  }
  const meta = config.metadata;
  Object.assign(annotations, {
    [CRI_ANNOTATIONS.sandboxId]: id,
    [CRI_ANNOTATIONS.sandboxNamespace]: meta?.namespace ?? "",
    [CRI_ANNOTATIONS.sandboxUid]: meta?.uid ?? "",
    [CRI_ANNOTATIONS.sandboxName]: meta?.name ?? "",
    [CRI_ANNOTATIONS.sandboxLogDirectory]: config.logDirectory,
    [CRI_ANNOTATIONS.sandboxImageName]: input.imageName,
    [CRI_ANNOTATIONS.containerType]: "sandbox",
  });
  spec.annotations = annotations;

  if (sc?.privileged) {
    // Privileged pods get a writable /sys.
    spec.mounts = spec.mounts.map((m) =>
      m.destination === "/sys" ? { ...m, options: m.options.map((o) => o === "ro" ? "rw" : o) } : m
    );
  }

  const seccomp = seccompChoice(sc, host.seccompEnabled);
  if (seccomp.kind === "runtime-default") {
    spec.linux.seccomp = defaultSeccompProfile(
      spec.process.capabilities.bounding,
      host.arch,
      host.kernel,
    );
  } else if (seccomp.kind === "localhost") {
    if (input.seccompProfile === undefined) {
      throw new InvalidArgumentError(
        `seccomp profile ${JSON.stringify(seccomp.path)} was not read (it is needed)`,
      );
    }
    spec.linux.seccomp = parseSeccompProfile(input.seccompProfile, seccomp.path);
  }

  // The user from the security context, else the image's; then the pod's extra groups.
  const user = resolveUser(
    sandboxUserString(sc?.runAsUser, sc?.runAsGroup, image.user),
    input.userFiles ?? {},
  );
  const groups = [...(sc?.supplementalGroups ?? [])];
  if (user) {
    spec.process.user = { uid: user.uid, gid: user.gid };
    groups.push(user.gid);
  }
  for (const g of groups) {
    if (!Number.isInteger(g) || g < 0 || g > 0xffffffff) {
      throw new InvalidArgumentError(`supplemental group ${g} is not a valid gid`);
    }
  }
  if (groups.length) spec.process.user.additionalGids = [...new Set(groups)].sort((a, b) => a - b);
  return spec;
}
