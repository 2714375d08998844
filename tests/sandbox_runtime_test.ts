/**
 * The sandbox runtime against a real, private containerd (the system's, 1.6): pod
 * sandboxes started from the test pause image run with the right namespaces, spec,
 * files and shm; failed starts and shutdowns leave nothing behind.
 */
import { join } from "node:path";
import {
  CancelledError,
  FailedPreconditionError,
  NotFoundError,
  StatusError,
  UnavailableError,
} from "../src/errors.ts";
import type { SandboxRuntimeClient } from "../src/containerd/types.ts";
import { GrpcContainerdClient } from "../src/containerd/grpc_client.ts";
import {
  NamespaceMode,
  PodSandboxConfig,
  SecurityProfile_ProfileType as ProfileType,
} from "../src/gen/cri/runtime/v1/api.ts";
import { criDirs, SandboxRuntime, type StartSandboxRequest } from "../src/sandboxer/mod.ts";
import { goArch } from "../src/sandboxer/image.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { PrivateContainerd } from "./harness/containerd.ts";
import { importImages } from "./harness/containers.ts";
import { buildImages, PAUSE_IMAGE } from "./harness/image.ts";
import { eventually, pidsWithCmdline, run } from "./harness/process.ts";

const NS = "k8s.io";
const RUNC = "io.containerd.runc.v2";

/** A sandbox id as the CRI makes them: 64 hex digits. */
function sandboxId(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function pod(name: string, config: Record<string, unknown> = {}): PodSandboxConfig {
  const partial = {
    metadata: { name, uid: `uid-${name}`, namespace: "default", attempt: 0 },
    logDirectory: `/var/log/pods/default_${name}`,
    labels: { app: name },
    ...config,
  };
  // deno-lint-ignore no-explicit-any
  return PodSandboxConfig.fromPartial(partial as any);
}

function hostNetworkPod(name: string, config: Record<string, unknown> = {}): PodSandboxConfig {
  return pod(name, {
    linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE } } },
    ...config,
  });
}

/** The test pause image's command. */
const PAUSE_COMMAND = ["/bin/sleep", "2147483647"];

/** The process's command line once it has exec'd (runc's init shows first, briefly). */
async function commandLine(pid: number): Promise<string[]> {
  const read = async () =>
    (await Deno.readTextFile(`/proc/${pid}/cmdline`)).split("\0").filter(Boolean);
  return await eventually(`pid ${pid} to exec`, async () => {
    const args = await read();
    return args[0] === "runc" ? undefined : args;
  });
}

async function nsInode(pid: number | "self", ns: string): Promise<string> {
  return await Deno.readLink(`/proc/${pid}/ns/${ns}`);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("sandbox runtime against a real containerd", async (t) => {
  const containerd = await PrivateContainerd.start();
  const client = new GrpcContainerdClient({ address: containerd.socket });
  const dirs = criDirs(join(containerd.dir, "root"), join(containerd.dir, "state"));
  // As containerd's restrict_oom_score_adj: these tests may lack CAP_SYS_RESOURCE, which
  // lowering the pause's OOM score below their own needs (runc fails otherwise).
  const options = { client, pauseImage: PAUSE_IMAGE, criDirs: dirs, restrictOomScoreAdj: true };
  const runtime = new SandboxRuntime(options);
  const ownOomScore = Number((await Deno.readTextFile("/proc/self/oom_score_adj")).trim());
  const netnsNames: string[] = [];
  const ctr = async (...args: string[]) => (await containerd.ctr(NS, args)).stdout;

  /** Asserts that nothing of sandbox `id` is left in containerd, on disk or in the mount table. */
  const assertNothingLeft = async (id: string) => {
    assert(!(await ctr("containers", "ls", "-q")).split("\n").includes(id), `container ${id}`);
    assert(!(await ctr("tasks", "ls", "-q")).split("\n").includes(id), `task ${id}`);
    const snapshots = await ctr("snapshots", "--snapshotter", "overlayfs", "ls");
    assert(!snapshots.split("\n").some((l) => l.startsWith(id + " ")), `snapshot ${id}`);
    const leases = await ctr("leases", "ls");
    assert(!leases.includes(id) && !/psd-start-/.test(leases), `lease of ${id}: ${leases}`);
    const paths = runtime.paths(id);
    assert(!(await exists(paths.rootDir)), `${paths.rootDir} is gone`);
    assert(!(await exists(paths.stateDir)), `${paths.stateDir} is gone`);
    const mountinfo = await Deno.readTextFile("/proc/self/mountinfo");
    assert(!mountinfo.includes(id), `no mount of ${id} is left`);
    await eventually(
      `the shim and processes of ${id} to be gone`,
      async () => (await pidsWithCmdline(id)).length === 0,
    );
  };

  const request = (id: string, config: PodSandboxConfig, netnsPath = ""): StartSandboxRequest => ({
    id,
    config,
    netnsPath,
    runtime: { name: RUNC },
  });

  try {
    await importImages(containerd, NS);

    await t.step(
      "a host-network pod: pause runs in the node's network, spec, files and shm as the CRI makes them",
      async () => {
        const id = sandboxId();
        const config = hostNetworkPod("host", {
          dnsConfig: {
            servers: ["10.96.0.10"],
            searches: ["default.svc.cluster.local"],
            options: ["ndots:5"],
          },
          annotations: { "example.com/note": "x" },
        });
        const started = await runtime.start(request(id, config));
        try {
          assert(started.pid > 0);
          assertEquals(started.labels, { oci_runtime_type: RUNC, selinux_label: "" });
          const task = await client.getTask(NS, id);
          assertEquals([task.status, task.pid], ["running", started.pid]);
          assertEquals(await commandLine(started.pid), PAUSE_COMMAND);
          // NODE network: the node's network and UTS namespaces; its own pid, ipc, mount.
          assertEquals(await nsInode(started.pid, "net"), await nsInode("self", "net"));
          assertEquals(await nsInode(started.pid, "uts"), await nsInode("self", "uts"));
          for (const ns of ["pid", "ipc", "mnt"]) {
            assert(
              await nsInode(started.pid, ns) !== await nsInode("self", ns),
              `own ${ns} namespace`,
            );
          }
          assertEquals(
            (await Deno.readTextFile(`/proc/${started.pid}/oom_score_adj`)).trim(),
            String(Math.max(-998, ownOomScore)),
          );

          const info = JSON.parse(await ctr("containers", "info", id));
          assertEquals(info.Labels["io.cri-containerd.kind"], "sandbox");
          assertEquals(info.Labels["io.podsandboxd.owned"], "true");
          assertEquals(info.Labels.app, "host");
          assertEquals(
            info.Extensions ?? {},
            {},
            "no CRI metadata extension (B6: no recovery hijack)",
          );
          assertEquals(info.Image, PAUSE_IMAGE);
          assertEquals(info.Runtime.Name, RUNC);
          assertEquals(info.SnapshotKey, id);
          assertEquals(info.Snapshotter, "overlayfs");
          assertEquals(new Date(info.CreatedAt).getTime(), new Date(started.createdAt).getTime());
          const a = info.Spec.annotations;
          assertEquals(a["io.kubernetes.cri.sandbox-id"], id);
          assertEquals(a["io.kubernetes.cri.sandbox-name"], "host");
          assertEquals(a["io.kubernetes.cri.sandbox-namespace"], "default");
          assertEquals(a["io.kubernetes.cri.sandbox-uid"], "uid-host");
          assertEquals(a["io.kubernetes.cri.sandbox-log-directory"], "/var/log/pods/default_host");
          assertEquals(a["io.kubernetes.cri.podsandbox.image-name"], PAUSE_IMAGE);
          assertEquals(a["io.kubernetes.cri.container-type"], "sandbox");
          assertEquals(a["example.com/note"], undefined, "pod annotations pass only when allowed");
          assertEquals(info.Spec.root, { path: "rootfs", readonly: true });

          const paths = runtime.paths(id);
          assertEquals(await Deno.readTextFile(paths.hostname), Deno.hostname() + "\n");
          assertEquals(await Deno.readTextFile(paths.hosts), await Deno.readTextFile("/etc/hosts"));
          const resolv =
            "search default.svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n";
          assertEquals(await Deno.readTextFile(paths.resolvConf), resolv);
          // The pause sees them: resolv.conf bound in, /dev/shm the sandbox's tmpfs.
          assertEquals(
            await Deno.readTextFile(`/proc/${started.pid}/root/etc/resolv.conf`),
            resolv,
          );
          const shm = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
            .find((l) => l.split(" ")[4] === paths.shm);
          assert(shm, `shm is mounted at ${paths.shm}`);
          assertMatch(shm, / - tmpfs shm rw,size=65536k$/);
          // The kernel shows a tmpfs's mode only when it is not 1777.
          assertEquals((await Deno.stat(paths.shm)).mode! & 0o7777, 0o1777);
          for (const flag of ["nosuid", "nodev", "noexec"]) {
            assert(shm.split(" ")[5].includes(flag), flag);
          }
          const shmProbe = join(paths.shm, "probe");
          await Deno.writeTextFile(shmProbe, "shared");
          assertEquals(
            await Deno.readTextFile(`/proc/${started.pid}/root/dev/shm/probe`),
            "shared",
          );
        } finally {
          await runtime.shutdown(id);
        }
        await assertNothingLeft(id);
      },
    );

    await t.step(
      "a pod with its own network namespace: the pause joins it and has the pod's hostname",
      async () => {
        const name = `psd-${sandboxId().slice(0, 12)}`;
        await run("ip", ["netns", "add", name]);
        netnsNames.push(name);
        const netns = `/var/run/netns/${name}`;
        const id = sandboxId();
        const started = await runtime.start(request(id, pod("own", { hostname: "web-1" }), netns));
        try {
          const inode = (await Deno.stat(netns)).ino;
          assertEquals(await nsInode(started.pid, "net"), `net:[${inode}]`);
          assert(await nsInode(started.pid, "uts") !== await nsInode("self", "uts"));
          const hostname = await run("nsenter", ["-t", String(started.pid), "-u", "hostname"]);
          assertEquals(hostname.stdout.trim(), "web-1");
          assertEquals(await Deno.readTextFile(runtime.paths(id).hostname), "web-1\n");
          // No DNS config: the node's resolv.conf.
          assertEquals(
            await Deno.readTextFile(runtime.paths(id).resolvConf),
            await Deno.readTextFile("/etc/resolv.conf"),
          );
          const sysctl = await run("nsenter", [
            `--net=${netns}`,
            "cat",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
          ]);
          assertEquals(sysctl.stdout.trim(), "0");
        } finally {
          await runtime.shutdown(id);
        }
        await assertNothingLeft(id);
        assert(await exists(netns), "the netns is the CRI's: shutdown never touches it");
      },
    );

    await t.step(
      "security context: run_as_user resolved in the image, supplemental groups, RuntimeDefault seccomp",
      async () => {
        const id = sandboxId();
        const config = hostNetworkPod("secure", {
          linux: {
            securityContext: {
              namespaceOptions: { network: NamespaceMode.NODE },
              // The image has no /etc/passwd: uid 65534 runs with group 0 (looked up in a
              // read-only mount of the snapshot).
              runAsUser: { value: 65534 },
              supplementalGroups: [3000],
              seccomp: { profileType: ProfileType.RuntimeDefault },
            },
          },
        });
        const started = await runtime.start(request(id, config));
        try {
          const status = await Deno.readTextFile(`/proc/${started.pid}/status`);
          assertMatch(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
          assertMatch(status, /^Gid:\s+0\s+0\s+0\s+0$/m);
          assertMatch(status, /^Groups:\s+0 3000\s*$/m);
          assertMatch(status, /^Seccomp:\s+2$/m);
          assertEquals(await exists(join(runtime.paths(id).stateDir, "rootfs-lookup")), false);
        } finally {
          await runtime.shutdown(id);
        }
        await assertNothingLeft(id);
      },
    );

    await t.step(
      "a pause image that is an index: the manifest of this node's platform is the one run",
      async () => {
        const name = "docker.io/local/pause-index:latest";
        await containerd.ctr(NS, ["images", "import", await indexImage(name)]);
        assertEquals(
          (await client.getImage(NS, name)).target.mediaType,
          "application/vnd.oci.image.index.v1+json",
        );
        const r = new SandboxRuntime({ ...options, pauseImage: name });
        const id = sandboxId();
        const started = await r.start(request(id, hostNetworkPod("index")));
        try {
          // The other platform's manifest (listed first) would run "sh -c 'exit 3'".
          assertEquals(await commandLine(started.pid), PAUSE_COMMAND);
        } finally {
          await r.shutdown(id);
        }
        await assertNothingLeft(id);
      },
    );

    await t.step(
      "a lease of the caller's: the snapshot is made under it (containerd-lease), none of our own",
      async () => {
        const lease = `psd-test-${sandboxId().slice(0, 12)}`;
        await ctr("leases", "create", "--id", lease);
        try {
          const id = sandboxId();
          await runtime.start({ ...request(id, hostNetworkPod("leased")), lease });
          try {
            const leases = await ctr("leases", "ls", "-q");
            assertEquals(leases.split("\n").filter((l) => l.startsWith("psd-start-")), []);
          } finally {
            await runtime.shutdown(id);
          }
          await assertNothingLeft(id);
          // containerd honours the header: a lease that does not exist refuses the snapshot.
          const other = sandboxId();
          const err = await assertRejects(
            () =>
              runtime.start({ ...request(other, hostNetworkPod("leased")), lease: "psd-nosuch" }),
            FailedPreconditionError,
          );
          assertMatch(
            err.message,
            /containerd lease psd-nosuch does not exist in namespace k8s.io/,
          );
          await assertNothingLeft(other);
        } finally {
          await ctr("leases", "delete", lease);
        }
      },
    );

    await t.step(
      "a missing pause image: FailedPrecondition naming it and how to pull it; nothing made",
      async () => {
        const missing = new SandboxRuntime({ ...options, pauseImage: "docker.io/local/absent:1" });
        const id = sandboxId();
        const err = await assertRejects(
          () => missing.start(request(id, hostNetworkPod("absent"))),
          FailedPreconditionError,
        );
        assertMatch(
          err.message,
          /pause image docker.io\/local\/absent:1 is not in containerd namespace k8s.io/,
        );
        assertMatch(err.message, /crictl pull docker.io\/local\/absent:1/);
        await assertNothingLeft(id);
      },
    );

    await t.step(
      "a runtime containerd does not have: the task fails and everything before it is undone",
      async () => {
        const id = sandboxId();
        const err = await runtime.start({
          ...request(id, hostNetworkPod("badrt")),
          runtime: { name: "io.containerd.nosuch.v1" },
        }).then(() => undefined, (e) => e);
        assert(err instanceof StatusError, `a typed error: ${err}`);
        assertMatch(err.message, /tasks.Create/);
        await assertNothingLeft(id);
      },
    );

    await t.step(
      "an abort between steps or during a call undoes everything made so far",
      async () => {
        const steps = [
          "createLease",
          "prepareSnapshot",
          "createContainer",
          "createTask",
          "startTask",
        ] as const;
        for (const step of steps) {
          for (const when of ["after", "during"] as const) {
            const id = sandboxId();
            const controller = new AbortController();
            const interposed = interpose(client, step, when, () => controller.abort());
            const r = new SandboxRuntime({ ...options, client: interposed });
            const err = await assertRejects(
              () =>
                r.start(request(id, hostNetworkPod(`abort-${step}`)), {
                  signal: controller.signal,
                }),
              CancelledError,
            );
            assert(err instanceof CancelledError, `${when} ${step}: ${err}`);
            await assertNothingLeft(id).catch((e) => {
              throw new Error(`abort ${when} ${step}: ${e.message}`, { cause: e });
            });
          }
        }
      },
    );

    await t.step(
      "an answer lost after containerd made something (UNAVAILABLE) still undoes it",
      async () => {
        for (const step of ["prepareSnapshot", "createContainer", "createTask"] as const) {
          const id = sandboxId();
          const lossy = interpose(client, step, "after", () => {
            throw new UnavailableError(`containerd ${step}: connection lost (injected)`);
          });
          const r = new SandboxRuntime({ ...options, client: lossy });
          await assertRejects(
            () => r.start(request(id, hostNetworkPod(`lost-${step}`))),
            UnavailableError,
          );
          await assertNothingLeft(id).catch((e) => {
            throw new Error(`answer of ${step} lost: ${e.message}`, { cause: e });
          });
        }
      },
    );

    await t.step(
      "a start refused because the id is taken removes nothing of what was there",
      async () => {
        const id = sandboxId();
        // Someone else's container and snapshot under the id.
        await containerd.ctr(NS, ["containers", "create", PAUSE_IMAGE, id]);
        try {
          const err = await runtime.start(request(id, hostNetworkPod("taken"))).then(
            () => undefined,
            (e) => e,
          );
          assert(err instanceof FailedPreconditionError, `refused: ${err}`);
          assertMatch(err.message, /container k8s.io\/\w+ already exists/);
          assert((await ctr("containers", "ls", "-q")).split("\n").includes(id), "theirs stays");
          const snapshots = await ctr("snapshots", "--snapshotter", "overlayfs", "ls");
          assert(snapshots.split("\n").some((l) => l.startsWith(id + " ")), "their snapshot stays");
        } finally {
          await containerd.ctr(NS, ["containers", "delete", id]);
          await containerd.ctr(NS, ["snapshots", "--snapshotter", "overlayfs", "rm", id], {
            allowFailure: true,
          });
        }
      },
    );

    await t.step(
      "shutdown is idempotent, and answers OK for a sandbox that never was",
      async () => {
        const id = sandboxId();
        await runtime.start(request(id, hostNetworkPod("twice")));
        await runtime.shutdown(id);
        await runtime.shutdown(id);
        await assertNothingLeft(id);
        await runtime.shutdown(sandboxId());
      },
    );

    await t.step("shutdown refuses a container podsandboxd did not create", async () => {
      const id = sandboxId();
      await containerd.ctr(NS, ["containers", "create", PAUSE_IMAGE, id]);
      try {
        const err = await assertRejects(() => runtime.shutdown(id), FailedPreconditionError);
        assertMatch(err.message, /was not created by podsandboxd/);
        assert((await ctr("containers", "ls", "-q")).split("\n").includes(id), "it is still there");
      } finally {
        await containerd.ctr(NS, ["containers", "delete", id]);
      }
    });

    await t.step("10 sandboxes start and shut down in parallel, leaving nothing", async () => {
      const ids = Array.from({ length: 10 }, sandboxId);
      const started = await Promise.all(
        ids.map((id, i) => runtime.start(request(id, hostNetworkPod(`par-${i}`)))),
      );
      assertEquals(new Set(started.map((s) => s.pid)).size, 10);
      for (const s of started) assertEquals((await client.getTask(NS, s.id)).status, "running");
      await Promise.all(ids.map((id) => runtime.shutdown(id)));
      for (const id of ids) await assertNothingLeft(id);
      for (const id of ids) await assertRejects(() => client.getTask(NS, id), NotFoundError);
    });
  } finally {
    client.close();
    await containerd.stop();
    for (const name of netnsNames) {
      await run("ip", ["netns", "delete", name], { allowFailure: true });
    }
  }
});

async function sha256(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * An OCI layout tarball of image `name` whose target is an index: first a manifest for
 * another platform (whose config runs "sh -c 'exit 3'"), then the pause image's for this
 * node's architecture.
 */
async function indexImage(name: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "psd-idx-" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  const [tar] = await buildImages(dir, [{ name, entrypoint: ["/bin/sleep", "2147483647"] }]);
  const layout = join(dir, "layout");
  await Deno.mkdir(layout);
  await run("tar", ["-C", layout, "-xf", tar]);
  const blobs = join(layout, "blobs", "sha256");
  const put = async (doc: unknown) => {
    const bytes = new TextEncoder().encode(JSON.stringify(doc));
    const digest = await sha256(bytes);
    await Deno.writeFile(join(blobs, digest), bytes);
    return { digest: `sha256:${digest}`, size: bytes.length };
  };
  const index = JSON.parse(await Deno.readTextFile(join(layout, "index.json")));
  const pause = index.manifests[0];
  const manifest = JSON.parse(
    await Deno.readTextFile(join(blobs, pause.digest.slice("sha256:".length))),
  );
  const config = JSON.parse(
    await Deno.readTextFile(join(blobs, manifest.config.digest.slice("sha256:".length))),
  );
  const other = Deno.build.arch === "x86_64" ? "arm64" : "amd64";
  const decoyConfig = await put({
    ...config,
    architecture: other,
    config: { Entrypoint: ["/bin/sh", "-c", "exit 3"] },
  });
  const decoy = await put({ ...manifest, config: { ...manifest.config, ...decoyConfig } });
  const manifestType = "application/vnd.oci.image.manifest.v1+json";
  const list = await put({
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [
      { mediaType: manifestType, ...decoy, platform: { os: "linux", architecture: other } },
      {
        mediaType: manifestType,
        digest: pause.digest,
        size: pause.size,
        platform: { os: "linux", architecture: goArch() },
      },
    ],
  });
  await Deno.writeTextFile(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{
        mediaType: "application/vnd.oci.image.index.v1+json",
        ...list,
        annotations: { "io.containerd.image.name": name },
      }],
    }),
  );
  const out = join(dir, "index.tar");
  await run("tar", ["-C", layout, "-cf", out, "oci-layout", "index.json", "blobs"]);
  return out;
}

/**
 * The real client with `fire` called around one method: "after" it returned, or
 * "during" it (once sent, before containerd answered), as a CRI cancelling its
 * context would.
 */
function interpose(
  client: SandboxRuntimeClient,
  method: keyof SandboxRuntimeClient,
  when: "after" | "during",
  fire: () => void,
): SandboxRuntimeClient {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      if (prop !== method) return value.bind(target);
      return async (...args: unknown[]) => {
        const pending = value.apply(target, args);
        if (when === "during") {
          // Let the request reach containerd, then cancel it.
          await new Promise((r) => setTimeout(r, 1));
          fire();
          return await pending;
        }
        const result = await pending;
        fire();
        return result;
      };
    },
  });
}
