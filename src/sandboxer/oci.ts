/**
 * The OCI runtime spec, as far as a pod sandbox's spec uses it. Property names are the
 * spec's JSON names (runtime-spec v1.2); optional ones are left out of the JSON when
 * unset, as containerd's Go encoder omits them.
 *
 * @module
 */

/** The runtime-spec version containerd 2.1 writes. */
export const OCI_VERSION = "1.2.1";

export interface OciUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

export interface OciCapabilities {
  bounding: string[];
  effective: string[];
  permitted: string[];
}

export interface OciRlimit {
  type: string;
  hard: number;
  soft: number;
}

export interface OciProcess {
  user: OciUser;
  args: string[];
  env?: string[];
  cwd: string;
  capabilities: OciCapabilities;
  rlimits?: OciRlimit[];
  noNewPrivileges: boolean;
  oomScoreAdj?: number;
  selinuxLabel?: string;
}

export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

export type OciNamespaceType = "pid" | "network" | "mount" | "ipc" | "uts" | "user" | "cgroup";

export interface OciNamespace {
  type: OciNamespaceType;
  path?: string;
}

export interface OciIdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface OciSeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface OciSeccompRule {
  names: string[];
  action: string;
  args?: OciSeccompArg[];
  errnoRet?: number;
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: OciSeccompRule[];
}

export interface OciLinux {
  uidMappings?: OciIdMapping[];
  gidMappings?: OciIdMapping[];
  sysctl?: Record<string, string>;
  resources: {
    devices: Array<{ allow: boolean; access: string }>;
    cpu?: { shares: number };
  };
  cgroupsPath: string;
  namespaces: OciNamespace[];
  seccomp?: OciSeccomp;
  maskedPaths: string[];
  readonlyPaths: string[];
  mountLabel?: string;
}

export interface OciSpec {
  ociVersion: string;
  process: OciProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: OciMount[];
  annotations?: Record<string, string>;
  linux: OciLinux;
}

/** containerd's default capabilities of a container's process. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/**
 * containerd's default Linux spec for container `id` of `namespace`: its own pid, ipc,
 * uts, mount and network namespaces, the standard /proc, /dev, /sys and /run mounts,
 * the default capabilities, masked and read-only /proc and /sys paths, 1024 open files,
 * no device access, cgroup `/<namespace>/<id>`.
 */
export function defaultLinuxSpec(namespace: string, id: string): OciSpec {
  const caps = () => [...DEFAULT_CAPABILITIES];
  return {
    ociVersion: OCI_VERSION,
    process: {
      user: { uid: 0, gid: 0 },
      args: [],
      cwd: "/",
      capabilities: { bounding: caps(), effective: caps(), permitted: caps() },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs" },
    mounts: [
      mount("/proc", "proc", "proc", ["nosuid", "noexec", "nodev"]),
      mount("/dev", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
      mount("/dev/pts", "devpts", "devpts", [
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
        "gid=5",
      ]),
      mount("/dev/shm", "tmpfs", "shm", ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
      mount("/dev/mqueue", "mqueue", "mqueue", ["nosuid", "noexec", "nodev"]),
      mount("/sys", "sysfs", "sysfs", ["nosuid", "noexec", "nodev", "ro"]),
      mount("/run", "tmpfs", "tmpfs", ["nosuid", "strictatime", "mode=755", "size=65536k"]),
    ],
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      cgroupsPath: `/${namespace}/${id}`,
      namespaces: [
        { type: "pid" },
        { type: "ipc" },
        { type: "uts" },
        { type: "mount" },
        { type: "network" },
      ],
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
        "/proc/scsi",
      ],
      readonlyPaths: [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
      ],
    },
  };
}

function mount(destination: string, type: string, source: string, options: string[]): OciMount {
  return { destination, type, source, options };
}
