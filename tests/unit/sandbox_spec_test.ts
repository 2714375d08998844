/**
 * The pause container's OCI spec, built from a PodSandboxConfig as containerd's CRI
 * builds it: containerd's default Linux spec plus every sandbox option.
 */
import { InvalidArgumentError, UnimplementedError } from "../../src/errors.ts";
import {
  NamespaceMode,
  PodSandboxConfig,
  SecurityProfile_ProfileType as ProfileType,
} from "../../src/gen/cri/runtime/v1/api.ts";
import { DEFAULT_CAPABILITIES, type OciSpec } from "../../src/sandboxer/oci.ts";
import {
  buildSandboxSpec,
  cgroupsPath,
  globMatch,
  resolvConf,
  type SandboxHost,
  type SandboxSpecInput,
} from "../../src/sandboxer/spec.ts";
import { assert, assertEquals, assertMatch, assertThrows } from "../harness/assert.ts";

const ID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const NETNS = "/var/run/netns/cni-1234";
const PATHS = {
  shm: "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/ID/shm",
  resolvConf: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/ID/resolv.conf",
};
const HOST: SandboxHost = {
  arch: "amd64",
  kernel: { major: 6, minor: 1 },
  seccompEnabled: true,
  selinuxEnabled: false,
  inUserNamespace: false,
  enableUnprivilegedPorts: true,
  enableUnprivilegedIcmp: true,
};
const POD = { metadata: { name: "web", uid: "uid-1", namespace: "default", attempt: 0 } };

/** A PodSandboxConfig given partly (the rest defaults, as decoding leaves it). */
type Partial_<T> = T extends (infer U)[] ? Partial_<U>[]
  : T extends object ? { [K in keyof T]?: Partial_<T[K]> }
  : T;
type Config = Partial_<PodSandboxConfig>;

function input(
  config: Config = POD,
  overrides: Partial<SandboxSpecInput> = {},
): SandboxSpecInput {
  return {
    id: ID,
    namespace: "k8s.io",
    // deno-lint-ignore no-explicit-any
    config: PodSandboxConfig.fromPartial(config as any),
    image: { entrypoint: ["/pause"] },
    imageName: "registry.k8s.io/pause:3.10",
    netnsPath: NETNS,
    paths: PATHS,
    host: HOST,
    ...overrides,
  };
}

function hostNetwork(extra: Config = {}): Config {
  return {
    ...POD,
    ...extra,
    linux: {
      ...extra.linux,
      securityContext: {
        ...extra.linux?.securityContext,
        namespaceOptions: {
          network: NamespaceMode.NODE,
          ...extra.linux?.securityContext?.namespaceOptions,
        },
      },
    },
  };
}

/** Checks that `fn` throws an `ErrorClass` matching `pattern`; `name` says which case failed. */
function refuses(
  name: string,
  fn: () => unknown,
  ErrorClass: new (m: string) => Error,
  pattern: RegExp,
): void {
  try {
    fn();
  } catch (err) {
    assert(err instanceof ErrorClass, `${name}: expected ${ErrorClass.name}, got ${err}`);
    assertMatch(err.message, pattern, name);
    return;
  }
  throw new Error(`${name}: nothing was thrown`);
}

const namespaces = (s: OciSpec) =>
  s.linux.namespaces.map((n) => n.path ? `${n.type}=${n.path}` : n.type);
const mount = (s: OciSpec, dest: string) => s.mounts.find((m) => m.destination === dest);

Deno.test("a pod with its own network: containerd's defaults with every sandbox option", () => {
  const spec = buildSandboxSpec(
    input({ ...POD, hostname: "web-1", logDirectory: "/var/log/pods/default_web_uid-1" }),
  );
  assertEquals(spec.ociVersion, "1.2.1");
  assertEquals(spec.root, { path: "rootfs", readonly: true });
  assertEquals(spec.process.args, ["/pause"]);
  assertEquals(spec.process.cwd, "/");
  assertEquals(spec.process.user, { uid: 0, gid: 0 });
  assertEquals(spec.process.noNewPrivileges, true);
  assertEquals(spec.process.rlimits, undefined, "default rlimits are cleared");
  assertEquals(spec.process.oomScoreAdj, -998);
  assertEquals(spec.process.capabilities.bounding, [...DEFAULT_CAPABILITIES]);
  assertEquals(spec.hostname, "web-1");
  assertEquals(namespaces(spec), ["pid", "ipc", "uts", "mount", `network=${NETNS}`]);
  assertEquals(spec.linux.cgroupsPath, `/k8s.io/${ID}`);
  assertEquals(spec.linux.resources, {
    devices: [{ allow: false, access: "rwm" }],
    cpu: { shares: 2 },
  });
  assertEquals(spec.linux.seccomp, undefined);
  assertEquals(spec.mounts.map((m) => m.destination), [
    "/proc",
    "/dev",
    "/dev/pts",
    "/dev/mqueue",
    "/sys",
    "/dev/shm",
    "/etc/resolv.conf",
  ]);
  assertEquals(mount(spec, "/dev/shm"), {
    destination: "/dev/shm",
    type: "bind",
    source: PATHS.shm,
    options: ["rbind", "ro", "nosuid", "nodev", "noexec"],
  });
  assertEquals(mount(spec, "/etc/resolv.conf"), {
    destination: "/etc/resolv.conf",
    type: "bind",
    source: PATHS.resolvConf,
    options: ["rbind", "ro", "nosuid", "nodev", "noexec"],
  });
  assertEquals(spec.linux.sysctl, {
    "net.ipv4.ip_unprivileged_port_start": "0",
    "net.ipv4.ping_group_range": "0 2147483647",
  });
  assertEquals(spec.annotations, {
    "io.kubernetes.cri.sandbox-id": ID,
    "io.kubernetes.cri.sandbox-namespace": "default",
    "io.kubernetes.cri.sandbox-uid": "uid-1",
    "io.kubernetes.cri.sandbox-name": "web",
    "io.kubernetes.cri.sandbox-log-directory": "/var/log/pods/default_web_uid-1",
    "io.kubernetes.cri.podsandbox.image-name": "registry.k8s.io/pause:3.10",
    "io.kubernetes.cri.container-type": "sandbox",
  });
  assert(spec.linux.maskedPaths.includes("/proc/kcore"));
  assert(spec.linux.readonlyPaths.includes("/proc/sys"));
  // The JSON containerd stores: optional fields absent, not null.
  const json = JSON.parse(JSON.stringify(spec));
  assertEquals("env" in json.process, false);
  assertEquals("additionalGids" in json.process.user, false);
});

Deno.test("namespace modes: NODE network drops net and uts, NODE pid and ipc drop theirs", () => {
  const cases: Array<[string, Config, string[], string]> = [
    ["host network", hostNetwork(), ["pid", "ipc", "mount"], PATHS.shm],
    [
      "host network and pid",
      hostNetwork({
        linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.NODE } } },
      }),
      ["ipc", "mount"],
      PATHS.shm,
    ],
    [
      "host ipc (shm is the node's)",
      { ...POD, linux: { securityContext: { namespaceOptions: { ipc: NamespaceMode.NODE } } } },
      ["pid", "uts", "mount", `network=${NETNS}`],
      "/dev/shm",
    ],
    [
      "everything the node's",
      hostNetwork({
        linux: {
          securityContext: {
            namespaceOptions: { pid: NamespaceMode.NODE, ipc: NamespaceMode.NODE },
          },
        },
      }),
      ["mount"],
      "/dev/shm",
    ],
    [
      "user namespace NODE (none of its own)",
      {
        ...POD,
        linux: {
          securityContext: {
            namespaceOptions: { usernsOptions: { mode: NamespaceMode.NODE } },
          },
        },
      },
      ["pid", "ipc", "uts", "mount", `network=${NETNS}`],
      PATHS.shm,
    ],
  ];
  for (const [name, config, expected, shm] of cases) {
    // The CRI gives a netns path only to pods with their own network.
    const hostNet = config.linux?.securityContext?.namespaceOptions?.network === NamespaceMode.NODE;
    const spec = buildSandboxSpec(input(config, { netnsPath: hostNet ? "" : NETNS }));
    assertEquals(namespaces(spec), expected, name);
    assertEquals(mount(spec, "/dev/shm")?.source, shm, name);
  }
});

Deno.test("a host-network pod gets no unprivileged-port/ICMP sysctls; its own sysctls stay", () => {
  const spec = buildSandboxSpec(
    input(hostNetwork({ linux: { sysctls: { "kernel.shm_rmid_forced": "1" } } }), {
      netnsPath: "",
    }),
  );
  assertEquals(spec.linux.sysctl, { "kernel.shm_rmid_forced": "1" });
  const own = buildSandboxSpec(input({
    ...POD,
    linux: { sysctls: { "net.ipv4.ip_unprivileged_port_start": "1024" } },
  }, { host: { ...HOST, enableUnprivilegedIcmp: false } }));
  assertEquals(own.linux.sysctl, { "net.ipv4.ip_unprivileged_port_start": "1024" });
  const inUserns = buildSandboxSpec(input(POD, { host: { ...HOST, inUserNamespace: true } }));
  assertEquals(inUserns.linux.sysctl, { "net.ipv4.ip_unprivileged_port_start": "0" });
});

Deno.test("cgroup parents: path/id, or slice:cri-containerd:id for systemd slices", () => {
  const cases: Array<[string, string]> = [
    ["/kubepods/burstable/pod1", `/kubepods/burstable/pod1/${ID}`],
    ["/kubepods/burstable/pod1/", `/kubepods/burstable/pod1/${ID}`],
    ["kubepods-burstable-pod1.slice", `kubepods-burstable-pod1.slice:cri-containerd:${ID}`],
    [
      "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod2.slice",
      `kubepods-besteffort-pod2.slice:cri-containerd:${ID}`,
    ],
  ];
  for (const [parent, expected] of cases) {
    assertEquals(cgroupsPath(parent, ID), expected, parent);
    const spec = buildSandboxSpec(input({ ...POD, linux: { cgroupParent: parent } }));
    assertEquals(spec.linux.cgroupsPath, expected, parent);
  }
});

Deno.test("the image gives args, env and working directory; an image that cannot run is refused", () => {
  const spec = buildSandboxSpec(input(POD, {
    image: {
      entrypoint: ["/bin/sleep"],
      cmd: ["infinity"],
      env: ["PATH=/bin", "UNSET", "A=1"],
      workingDir: "/work",
    },
  }));
  assertEquals(spec.process.args, ["/bin/sleep", "infinity"]);
  assertEquals(spec.process.env, ["PATH=/bin", "A=1"]);
  assertEquals(spec.process.cwd, "/work");
  assertEquals(buildSandboxSpec(input(POD, { image: { cmd: ["/pause"] } })).process.args, [
    "/pause",
  ]);
  assertThrows(
    () => buildSandboxSpec(input(POD, { image: {} })),
    InvalidArgumentError,
    /pause image registry.k8s.io\/pause:3.10 has neither entrypoint nor cmd/,
  );
});

Deno.test("the user: run_as_user/group over the image's USER, names from the image's files", () => {
  const passwd =
    "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65533::/:/bin/false\nweb:x:1000:1001::/:/bin/sh\n";
  const group = "root:x:0:\nweb:x:1001:\nstaff:x:50:\n";
  const files = { passwd, group };
  const cases: Array<
    [string, Config, string | undefined, { uid: number; gid: number; additionalGids?: number[] }]
  > = [
    ["nobody set", POD, undefined, { uid: 0, gid: 0 }],
    ["numeric uid:gid of the image", POD, "65535:65535", {
      uid: 65535,
      gid: 65535,
      additionalGids: [65535],
    }],
    ["image user name", POD, "nobody", { uid: 65534, gid: 65533, additionalGids: [65533] }],
    ["image uid with a passwd entry", POD, "1000", {
      uid: 1000,
      gid: 1001,
      additionalGids: [1001],
    }],
    ["image uid without one", POD, "4242", { uid: 4242, gid: 0, additionalGids: [0] }],
    ["image name:group", POD, "web:staff", { uid: 1000, gid: 50, additionalGids: [50] }],
    [
      "run_as_user over the image",
      { ...POD, linux: { securityContext: { runAsUser: { value: 1000 } } } },
      "nobody",
      { uid: 1000, gid: 1001, additionalGids: [1001] },
    ],
    [
      "run_as_user and run_as_group, with supplemental groups",
      {
        ...POD,
        linux: {
          securityContext: {
            runAsUser: { value: 7 },
            runAsGroup: { value: 8 },
            supplementalGroups: [30, 8, 20],
          },
        },
      },
      undefined,
      { uid: 7, gid: 8, additionalGids: [8, 20, 30] },
    ],
    [
      "supplemental groups alone",
      { ...POD, linux: { securityContext: { supplementalGroups: [5, 3, 5] } } },
      undefined,
      { uid: 0, gid: 0, additionalGids: [3, 5] },
    ],
    [
      "root by run_as_user 0",
      { ...POD, linux: { securityContext: { runAsUser: { value: 0 } } } },
      "nobody",
      { uid: 0, gid: 0, additionalGids: [0] },
    ],
  ];
  for (const [name, config, user, expected] of cases) {
    const spec = buildSandboxSpec(
      input(config, { image: { entrypoint: ["/pause"], user }, userFiles: files }),
    );
    assertEquals(spec.process.user, expected, name);
  }
  const refusals: Array<[string, Config, string | undefined, UserFilesLike, RegExp]> = [
    [
      "group without user",
      { ...POD, linux: { securityContext: { runAsGroup: { value: 5 } } } },
      undefined,
      files,
      /run_as_group 5 is set without run_as_user/,
    ],
    ["unknown name", POD, "ghost", files, /user "ghost" is not in the image's \/etc\/passwd/],
    [
      "no passwd for a name",
      POD,
      "nobody",
      {},
      /needs the image's \/etc\/passwd, which it does not have/,
    ],
    [
      "unknown group",
      POD,
      "web:ghosts",
      files,
      /group "ghosts" is not in the image's \/etc\/group/,
    ],
    ["too many parts", POD, "a:b:c", files, /expected user\[:group\]/],
    ["uid out of range", POD, "2147483648", files, /uid out of range/],
  ];
  for (const [name, config, user, userFiles, message] of refusals) {
    refuses(
      name,
      () => buildSandboxSpec(input(config, { image: { entrypoint: ["/pause"], user }, userFiles })),
      InvalidArgumentError,
      message,
    );
  }
});
type UserFilesLike = { passwd?: string; group?: string };

Deno.test("seccomp: none when privileged or unconfined, containerd's default, a localhost profile", () => {
  const sc = (securityContext: NonNullable<NonNullable<Config["linux"]>["securityContext"]>) => ({
    ...POD,
    linux: { securityContext },
  });
  const runtimeDefault = { profileType: ProfileType.RuntimeDefault, localhostRef: "" };
  const none = [
    ["no profile", sc({})],
    ["unconfined", sc({ seccomp: { profileType: ProfileType.Unconfined } })],
    ["privileged with RuntimeDefault", sc({ seccomp: runtimeDefault, privileged: true })],
    ["deprecated path unconfined", sc({ seccompProfilePath: "unconfined" })],
  ] as const;
  for (const [name, config] of none) {
    assertEquals(buildSandboxSpec(input(config)).linux.seccomp, undefined, name);
  }

  const def = buildSandboxSpec(input(sc({ seccomp: runtimeDefault }))).linux.seccomp!;
  assertEquals(def.defaultAction, "SCMP_ACT_ERRNO");
  assertEquals(def.architectures, ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]);
  const allowed = new Set(
    def.syscalls!.filter((r) => r.action === "SCMP_ACT_ALLOW" && !r.args).flatMap((r) => r.names),
  );
  for (const name of ["read", "write", "execve", "arch_prctl", "chroot", "ptrace", "pause"]) {
    assert(allowed.has(name), `${name} is allowed`);
  }
  for (const name of ["mount", "reboot", "init_module", "unshare", "setns", "kexec_load"]) {
    assert(!allowed.has(name), `${name} is not allowed`);
  }
  assertEquals(def.syscalls!.find((r) => r.names[0] === "clone"), {
    names: ["clone"],
    action: "SCMP_ACT_ALLOW",
    args: [{ index: 0, value: 0x7e020000, op: "SCMP_CMP_MASKED_EQ" }],
  });
  assertEquals(def.syscalls!.find((r) => r.names[0] === "clone3"), {
    names: ["clone3"],
    action: "SCMP_ACT_ERRNO",
    errnoRet: 38,
  });
  // The deprecated path form selects the same profile.
  assertEquals(
    buildSandboxSpec(input(sc({ seccompProfilePath: "runtime/default" }))).linux.seccomp,
    def,
  );
  // Before kernel 4.8 ptrace is not safe to allow.
  const old = buildSandboxSpec(
    input(sc({ seccomp: runtimeDefault }), { host: { ...HOST, kernel: { major: 4, minor: 4 } } }),
  ).linux.seccomp!;
  assert(!old.syscalls!.some((r) => r.names.includes("ptrace")));

  const localhost = sc({
    seccomp: {
      profileType: ProfileType.Localhost,
      localhostRef: "/var/lib/kubelet/seccomp/p.json",
    },
  });
  const profile = JSON.stringify({
    defaultAction: "SCMP_ACT_LOG",
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 1, args: null }],
    unknownField: true,
  });
  assertEquals(buildSandboxSpec(input(localhost, { seccompProfile: profile })).linux.seccomp, {
    defaultAction: "SCMP_ACT_LOG",
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [{ names: ["mkdir"], action: "SCMP_ACT_ERRNO", errnoRet: 1 }],
  });
  const refusals: Array<[string, SandboxSpecInput, RegExp]> = [
    ["unread localhost profile", input(localhost), /was not read/],
    ["a profile that is no JSON", input(localhost, { seccompProfile: "{" }), /not JSON/],
    [
      "a profile without defaultAction",
      input(localhost, { seccompProfile: "{}" }),
      /defaultAction \(a string\) is required/,
    ],
    [
      "localhost_ref with RuntimeDefault",
      input(sc({ seccomp: { profileType: ProfileType.RuntimeDefault, localhostRef: "/x" } })),
      /localhost_ref may only be set with profile type Localhost/,
    ],
    [
      "a relative localhost profile",
      input(sc({ seccomp: { profileType: ProfileType.Localhost, localhostRef: "p.json" } })),
      /must be an absolute path/,
    ],
    [
      "a bad deprecated path",
      input(sc({ seccompProfilePath: "docker/strict" })),
      /invalid seccomp_profile_path/,
    ],
    [
      "a profile on a kernel without seccomp",
      input(sc({ seccomp: runtimeDefault }), { host: { ...HOST, seccompEnabled: false } }),
      /this kernel has no seccomp/,
    ],
  ];
  for (const [name, i, message] of refusals) {
    refuses(name, () => buildSandboxSpec(i), InvalidArgumentError, message);
  }
  // Unconfined is fine without kernel seccomp.
  assertEquals(
    buildSandboxSpec(
      input(sc({ seccomp: { profileType: ProfileType.Unconfined } }), {
        host: { ...HOST, seccompEnabled: false },
      }),
    ).linux.seccomp,
    undefined,
  );
});

Deno.test("privileged pods get a writable /sys", () => {
  const spec = buildSandboxSpec(
    input({ ...POD, linux: { securityContext: { privileged: true } } }),
  );
  assertEquals(mount(spec, "/sys")?.options, ["nosuid", "noexec", "nodev", "rw"]);
  assertEquals(mount(buildSandboxSpec(input()), "/sys")?.options, [
    "nosuid",
    "noexec",
    "nodev",
    "ro",
  ]);
});

Deno.test("resources, pod annotations passed through, the OOM score restricted", () => {
  const spec = buildSandboxSpec(input({
    ...POD,
    annotations: { "io.katacontainers.config.x": "1", "example.com/a": "2", "other": "3" },
    linux: {
      resources: {
        cpuPeriod: 100000,
        cpuQuota: 50000,
        cpuShares: 512,
        memoryLimitInBytes: 1 << 30,
      },
    },
  }, {
    podAnnotations: ["io.katacontainers.*", "example.com/?"],
    host: { ...HOST, minOomScoreAdj: -500 },
  }));
  const a = spec.annotations!;
  assertEquals(a["io.kubernetes.cri.sandbox-cpu-period"], "100000");
  assertEquals(a["io.kubernetes.cri.sandbox-cpu-quota"], "50000");
  assertEquals(a["io.kubernetes.cri.sandbox-cpu-shares"], "512");
  assertEquals(a["io.kubernetes.cri.sandbox-memory"], String(1 << 30));
  assertEquals(a["io.katacontainers.config.x"], "1");
  assertEquals(a["example.com/a"], "2");
  assertEquals(a["other"], undefined);
  assertEquals(spec.process.oomScoreAdj, -500);
  assertEquals(
    buildSandboxSpec(input(POD, { host: { ...HOST, minOomScoreAdj: -999 } })).process.oomScoreAdj,
    -998,
  );
});

Deno.test("configs the spec cannot honour are refused, naming the reason", () => {
  const refusals: Array<[string, SandboxSpecInput, new (m: string) => Error, RegExp]> = [
    [
      "hostname on a host-network pod",
      input(hostNetwork({ hostname: "h" }), { netnsPath: "" }),
      InvalidArgumentError,
      /needs the pod's own UTS namespace/,
    ],
    [
      "own network without a netns",
      input(POD, { netnsPath: "" }),
      InvalidArgumentError,
      /no netns path/,
    ],
    [
      "a user namespace of the pod",
      input({
        ...POD,
        linux: {
          securityContext: {
            namespaceOptions: {
              usernsOptions: {
                mode: NamespaceMode.POD,
                uids: [{ hostId: 100000, containerId: 0, length: 65536 }],
                gids: [{ hostId: 100000, containerId: 0, length: 65536 }],
              },
            },
          },
        },
      }),
      UnimplementedError,
      /userns mode POD/,
    ],
    [
      "mappings with user namespace NODE",
      input({
        ...POD,
        linux: {
          securityContext: {
            namespaceOptions: {
              usernsOptions: {
                mode: NamespaceMode.NODE,
                uids: [{ hostId: 1, containerId: 0, length: 1 }],
              },
            },
          },
        },
      }),
      InvalidArgumentError,
      /takes no uid\/gid mappings/,
    ],
    [
      "a malformed SELinux level",
      input({ ...POD, linux: { securityContext: { selinuxOptions: { level: "bad" } } } }),
      InvalidArgumentError,
      /SELinux level "bad" is not correct/,
    ],
    [
      "an SELinux node",
      input(POD, { host: { ...HOST, selinuxEnabled: true } }),
      UnimplementedError,
      /does not allocate SELinux labels/,
    ],
  ];
  for (const [name, i, ErrorClass, message] of refusals) {
    refuses(name, () => buildSandboxSpec(i), ErrorClass, message);
  }
  // A valid level on a node without SELinux is accepted (and applies nothing).
  buildSandboxSpec(
    input({ ...POD, linux: { securityContext: { selinuxOptions: { level: "s0:c1,c2" } } } }),
  );
});

Deno.test("resolv.conf from the pod's DNS config", () => {
  assertEquals(
    resolvConf({
      servers: ["10.96.0.10", "10.96.0.11"],
      searches: ["default.svc.cluster.local", "svc.cluster.local"],
      options: ["ndots:5"],
    }),
    "search default.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\nnameserver 10.96.0.11\noptions ndots:5\n",
  );
  assertEquals(resolvConf({ servers: [], searches: [], options: [] }), "");
});

Deno.test("pod annotation patterns match like Go's path.Match", () => {
  const cases: Array<[string, string, boolean]> = [
    ["io.kata.*", "io.kata.x", true],
    ["io.kata.*", "io.kata.x/y", false],
    ["*", "anything", true],
    ["a?c", "abc", true],
    ["a?c", "a/c", false],
    ["[ab]x", "bx", true],
    ["[^ab]x", "cx", true],
    ["[^ab]x", "ax", false],
    ["a\\*", "a*", true],
    ["a\\*", "ab", false],
    ["exact", "exact", true],
    ["exact", "exactly", false],
    ["[bad", "[bad", false],
  ];
  for (const [pattern, name, expected] of cases) {
    assertEquals(globMatch(pattern, name), expected, `${pattern} ~ ${name}`);
  }
});
