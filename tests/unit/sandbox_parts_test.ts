/**
 * The sandbox runtime's pure parts: image references, chain IDs, manifests and configs,
 * container labels, mount tables, paths inside a rootfs, Create's options.
 */
import { join } from "node:path";
import { FailedPreconditionError, InvalidArgumentError } from "../../src/errors.ts";
import { NamespaceMode } from "../../src/gen/cri/runtime/v1/api.ts";
import { criDirs, sandboxPaths } from "../../src/sandboxer/files.ts";
import { inUserNamespace, parseKernelVersion } from "../../src/sandboxer/host.ts";
import {
  chainId,
  goArch,
  normalizeImageRef,
  parseImageConfig,
  pickManifest,
} from "../../src/sandboxer/image.ts";
import { mountPointsUnder } from "../../src/sandboxer/mounts.ts";
import { decodePodSandboxConfig, encodePodSandboxConfig } from "../../src/sandboxer/pod_config.ts";
import { readUserFiles, resolveInRoot } from "../../src/sandboxer/rootfs.ts";
import { sandboxLabels } from "../../src/sandboxer/runtime.ts";
import { PodSandboxConfig } from "../../src/gen/cri/runtime/v1/api.ts";
import { assertEquals, assertThrows } from "../harness/assert.ts";

Deno.test("image references are normalised as containerd's CRI does", () => {
  const cases: Array<[string, string]> = [
    ["pause", "docker.io/library/pause:latest"],
    ["pause:3.10", "docker.io/library/pause:3.10"],
    ["docker.io/pause:3.10", "docker.io/library/pause:3.10"],
    ["local/pause", "docker.io/local/pause:latest"],
    ["docker.io/local/pause:latest", "docker.io/local/pause:latest"],
    ["registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"],
    ["localhost:5000/pause", "localhost:5000/pause:latest"],
    ["localhost/pause:1", "localhost/pause:1"],
    [
      "registry.k8s.io/pause@sha256:" + "a".repeat(64),
      "registry.k8s.io/pause@sha256:" + "a".repeat(64),
    ],
  ];
  for (const [ref, expected] of cases) assertEquals(normalizeImageRef(ref), expected, ref);
  for (const bad of ["", "Pause", "a//b", "pause image", "/pause"]) {
    assertThrows(() => normalizeImageRef(bad), InvalidArgumentError, /invalid image reference/);
  }
});

Deno.test("chain IDs: the first diff ID, then sha256 of 'parent child' per layer", async () => {
  const a = "sha256:" + "a".repeat(64);
  const b = "sha256:" + "b".repeat(64);
  const c = "sha256:" + "c".repeat(64);
  assertEquals(await chainId([a]), a);
  assertEquals(
    await chainId([a, b]),
    "sha256:ccd722928bd92476ba1745586fed6e45a102504185ad88cd89e01ff116fd146c",
  );
  assertEquals(
    await chainId([a, b, c]),
    "sha256:c1377126441fb2f5ec2c21ae2a60255331d639e830f0ee1b40a36e52d4c40588",
  );
  let refused = false;
  await chainId([]).catch((err) => refused = err instanceof InvalidArgumentError);
  assertEquals(refused, true);
});

Deno.test("an index's manifest for linux on this architecture is picked", () => {
  const d = (digest: string, platform?: object) => ({
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    digest,
    size: 1,
    platform,
  });
  const index = {
    manifests: [
      d("sha256:win", { os: "windows", architecture: "amd64" }),
      d("sha256:arm7", { os: "linux", architecture: "arm", variant: "v7" }),
      d("sha256:amd64", { os: "linux", architecture: "amd64" }),
      d("sha256:arm64v9", { os: "linux", architecture: "arm64", variant: "v9" }),
      d("sha256:arm64", { os: "linux", architecture: "arm64", variant: "v8" }),
      d("sha256:none"),
    ],
  };
  assertEquals(pickManifest(index, "amd64", "index")?.digest, "sha256:amd64");
  assertEquals(pickManifest(index, "arm64", "index")?.digest, "sha256:arm64");
  assertEquals(pickManifest(index, "s390x", "index"), undefined);
  assertThrows(() => pickManifest({}, "amd64", "index"), FailedPreconditionError, /no manifests/);
  assertEquals(goArch("x86_64"), "amd64");
  assertEquals(goArch("aarch64"), "arm64");
});

Deno.test("an image config gives env, args, cwd, user, labels and its layers", () => {
  const parsed = parseImageConfig({
    architecture: "amd64",
    os: "linux",
    config: {
      Env: ["PATH=/bin"],
      Entrypoint: ["/pause"],
      Cmd: null,
      WorkingDir: "/",
      User: "65535:65535",
      Labels: { a: "1", n: 2 },
    },
    rootfs: { type: "layers", diff_ids: ["sha256:x", "sha256:y"] },
  }, "config");
  assertEquals(parsed, {
    config: {
      env: ["PATH=/bin"],
      entrypoint: ["/pause"],
      cmd: undefined,
      workingDir: "/",
      user: "65535:65535",
      labels: { a: "1" },
    },
    diffIds: ["sha256:x", "sha256:y"],
  });
  const bad: Array<[unknown, RegExp]> = [
    [[], /config is not a JSON object/],
    [{ rootfs: { type: "layers", diff_ids: [] } }, /has no layers/],
    [
      { rootfs: { type: "layers", diff_ids: ["x"] }, config: { Env: "PATH=/" } },
      /Env is not a list/,
    ],
  ];
  for (const [doc, message] of bad) {
    assertThrows(() => parseImageConfig(doc, "config"), FailedPreconditionError, message);
  }
});

Deno.test("container labels: pod labels over image labels, reserved ones dropped, the kind and ours", () => {
  assertEquals(
    sandboxLabels(
      { app: "web", shared: "pod" },
      {
        shared: "image",
        "containerd.io/gc.root": "x",
        "io.cri-containerd.kind": "container",
        "io.cri-containerd.image": "managed",
        huge: "x".repeat(5000),
        "org.opencontainers.image.title": "pause",
      },
    ),
    {
      app: "web",
      shared: "pod",
      "org.opencontainers.image.title": "pause",
      "io.cri-containerd.kind": "sandbox",
      "io.podsandboxd.owned": "true",
    },
  );
});

Deno.test("the CRI's directories and a sandbox's paths under them", () => {
  const dirs = criDirs("/var/lib/containerd", "/run/containerd");
  assertEquals(dirs, {
    root: "/var/lib/containerd/io.containerd.grpc.v1.cri",
    state: "/run/containerd/io.containerd.grpc.v1.cri",
  });
  assertEquals(sandboxPaths(dirs, "abc"), {
    rootDir: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/abc",
    stateDir: "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/abc",
    hostname: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/hostname",
    hosts: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/hosts",
    resolvConf: "/var/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/resolv.conf",
    shm: "/run/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/shm",
  });
});

Deno.test("mount points under a path come from mountinfo, deepest first, escapes decoded", () => {
  const mountinfo = [
    "22 1 0:21 / / rw - ext4 /dev/sda1 rw",
    "30 22 0:40 / /run/x/sandboxes/a/shm rw - tmpfs shm rw",
    "31 30 0:41 / /run/x/sandboxes/a/shm/deep rw - tmpfs t rw",
    "32 22 0:42 / /run/x/sandboxes/ab rw - tmpfs t rw",
    "33 22 0:43 / /run/x/sandboxes/a/with\\040space rw - tmpfs t rw",
  ].join("\n");
  assertEquals(mountPointsUnder(mountinfo, "/run/x/sandboxes/a"), [
    "/run/x/sandboxes/a/with space",
    "/run/x/sandboxes/a/shm/deep",
    "/run/x/sandboxes/a/shm",
  ]);
  assertEquals(mountPointsUnder(mountinfo, "/run/x/sandboxes/a/shm/"), [
    "/run/x/sandboxes/a/shm/deep",
    "/run/x/sandboxes/a/shm",
  ]);
  assertEquals(mountPointsUnder(mountinfo, "/nothing"), []);
});

Deno.test("paths inside a rootfs follow symlinks without leaving it", async () => {
  const root = await Deno.makeTempDir({ prefix: "psd-rootfs-" });
  try {
    await Deno.mkdir(join(root, "real/etc"), { recursive: true });
    await Deno.writeTextFile(join(root, "real/etc/passwd"), "web:x:1000:1000::/:/bin/sh\n");
    await Deno.symlink("/real/etc", join(root, "etc")); // absolute: inside the root
    // ".." past the root stays at the root: this is the rootfs's /other, not the host's.
    await Deno.writeTextFile(join(root, "other"), "staff:x:50:\n");
    await Deno.symlink("../../../../../../../other", join(root, "real/etc/group"));
    await Deno.symlink("loop", join(root, "loop"));
    assertEquals(await resolveInRoot(root, "/etc/passwd"), join(root, "real/etc/passwd"));
    assertEquals(await resolveInRoot(root, "/etc/group"), join(root, "other"));
    assertEquals(await resolveInRoot(root, "/missing/x"), undefined);
    assertEquals(await resolveInRoot(root, "/loop"), undefined);
    assertEquals(await readUserFiles(root), {
      passwd: "web:x:1000:1000::/:/bin/sh\n",
      group: "staff:x:50:\n",
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("node facts: kernel version, user namespace", () => {
  assertEquals(parseKernelVersion("6.1.0-28-amd64"), { major: 6, minor: 1 });
  assertEquals(parseKernelVersion("weird"), { major: 0, minor: 0 });
  assertEquals(inUserNamespace("         0          0 4294967295\n"), false);
  assertEquals(inUserNamespace("         0     100000      65536\n"), true);
  assertEquals(inUserNamespace(undefined), false);
});

Deno.test("Create's options decode as a PodSandboxConfig; another type or bad bytes are refused", () => {
  const config = PodSandboxConfig.fromPartial({
    metadata: { name: "web", uid: "u", namespace: "default", attempt: 1 },
    hostname: "web",
    dnsConfig: { servers: ["10.0.0.10"], searches: ["svc"], options: ["ndots:5"] },
    linux: {
      cgroupParent: "/kubepods",
      sysctls: { "net.core.somaxconn": "1024" },
      securityContext: {
        namespaceOptions: { network: NamespaceMode.NODE },
        runAsUser: { value: 0 },
        supplementalGroups: [1, 2],
      },
      resources: { cpuShares: 2, memoryLimitInBytes: 2 ** 40 },
    },
  });
  const encoded = encodePodSandboxConfig(config);
  assertEquals(encoded.typeUrl, "runtime.v1.PodSandboxConfig");
  assertEquals(decodePodSandboxConfig(encoded), config);
  assertEquals(
    decodePodSandboxConfig({
      ...encoded,
      typeUrl: "type.googleapis.com/runtime.v1.PodSandboxConfig",
    }),
    config,
  );
  assertThrows(
    () => decodePodSandboxConfig({ typeUrl: "runtime.v1.ContainerConfig", value: encoded.value }),
    InvalidArgumentError,
    /expected runtime.v1.PodSandboxConfig/,
  );
  assertThrows(
    () => decodePodSandboxConfig({ typeUrl: encoded.typeUrl, value: new Uint8Array([0x0a, 0xff]) }),
    InvalidArgumentError,
    /not a valid runtime.v1.PodSandboxConfig/,
  );
  assertThrows(() => decodePodSandboxConfig(undefined), InvalidArgumentError, /no options/);
});
