/**
 * podsandboxd as containerd 2.1's sandbox controller: containerd loads it as a proxy
 * plugin, and its CRI runs the pods of a runtime handler whose sandboxer is podsandboxd —
 * driven with CRI calls as a kubelet makes them. ci-containerd: pinned to 2.1 (only 2.x
 * loads external sandbox controllers).
 */
import { SandboxState } from "../src/gen/podsandboxd/v1/podsandboxd.ts";
import { AgentClient } from "../src/cli/client.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { CRI_NAMESPACE, type CriPod, NamespaceMode, PodSandboxState } from "./harness/cri.ts";
import { ContainerState } from "./harness/cri.ts";
import { BUSYBOX_IMAGE } from "./harness/image.ts";
import { eventually, pidsWithCmdline } from "./harness/process.ts";
import { HANDLER, SandboxerNode } from "./harness/sandboxer_node.ts";
import { FailedPreconditionError, NotFoundError, UnavailableError } from "../src/errors.ts";
import { join } from "node:path";

const RUN_FOREVER = ["sleep", "100000"];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a sandbox left in containerd and on disk (all empty once it is removed). */
async function leftovers(s: SandboxerNode, pod: CriPod) {
  const ctr = (args: string[]) =>
    s.node.containerd.ctr(CRI_NAMESPACE, args, { allowFailure: true });
  const containers = (await ctr(["containers", "ls", "-q"])).stdout.split("\n");
  const tasks = (await ctr(["tasks", "ls", "-q"])).stdout.split("\n");
  const snapshots = (await ctr(["snapshots", "ls"])).stdout;
  const root = join(
    s.node.containerd.dir,
    "root",
    "io.containerd.grpc.v1.cri",
    "sandboxes",
    pod.id,
  );
  const state = join(
    s.node.containerd.dir,
    "state",
    "io.containerd.grpc.v1.cri",
    "sandboxes",
    pod.id,
  );
  const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
    .filter((l) => l.includes(pod.id));
  // A pod's shim names it on its command line (-id ID); it exits once its last task is gone.
  const shims = await pidsWithCmdline(`containerd-shim-runc-v2 -namespace k8s.io -id ${pod.id}`);
  const exists = async (p: string) => await Deno.stat(p).then(() => true, () => false);
  return {
    container: containers.includes(pod.id),
    task: tasks.includes(pod.id),
    snapshot: snapshots.includes(pod.id),
    files: (await exists(root)) || (await exists(state)),
    mounts: mounts.length,
    shim: shims.length > 0,
  };
}

/** Resolves once nothing of the pod is left (the shim exits a moment after its task). */
async function nothingLeft(s: SandboxerNode, pod: CriPod): Promise<void> {
  let last: Awaited<ReturnType<typeof leftovers>> | undefined;
  try {
    await eventually(`nothing of ${pod.name} left`, async () => {
      last = await leftovers(s, pod);
      return JSON.stringify(last) === JSON.stringify(NOTHING_LEFT);
    });
  } catch {
    assertEquals(last, NOTHING_LEFT, `${pod.name}: what is left`);
  }
}

const NOTHING_LEFT = {
  container: false,
  task: false,
  snapshot: false,
  files: false,
  mounts: 0,
  shim: false,
};

/** The sandbox's pid as the agent records it, once READY. */
async function readyPid(client: AgentClient, pod: CriPod): Promise<number> {
  const record = await eventually(`${pod.name} READY in the agent`, async () => {
    const r = await client.get(pod.id).catch(() => undefined);
    return r?.state === SandboxState.SANDBOX_READY ? r : undefined;
  });
  return record.pid;
}

const ns = (pid: number, kind: string) => Deno.readLink(`/proc/${pid}/ns/${kind}`);

Deno.test("kubelet-style pods run, stop and are removed through podsandboxd as containerd 2.1's sandbox controller", async (t) => {
  const s = await SandboxerNode.start();
  const client = s.agent.client();
  try {
    let hostPod: CriPod;
    let pausePid = 0;
    await t.step(
      "RunPodSandbox on the handler: READY, with the pause's pid, run by the agent",
      async () => {
        hostPod = await s.cri.runPod("host", { runtimeHandler: HANDLER });
        assertEquals(await s.cri.podState(hostPod.id), PodSandboxState.SANDBOX_READY);
        pausePid = await readyPid(client, hostPod);
        assertMatch(await Deno.readTextFile(`/proc/${pausePid}/cmdline`), /sleep/);
        // The agent made it: its label, and the CRI's kind without the recovery extension.
        const info = JSON.parse(
          (await s.node.containerd.ctr(CRI_NAMESPACE, ["containers", "info", hostPod.id])).stdout,
        );
        assertEquals(info.Labels["io.podsandboxd.owned"], "true");
        assertEquals(info.Labels["io.cri-containerd.kind"], "sandbox");
        assertEquals(info.Extensions?.["io.cri-containerd.sandbox.metadata"], undefined);
        assert(
          s.agent.logs.some((l) => l.message?.startsWith(`sandbox k8s.io/${hostPod.id} started`)),
        );
      },
    );

    await t.step(
      "an app container runs in the pod: the pause's namespaces, the pod's resolv.conf",
      async () => {
        const app = await s.cri.createContainer(hostPod, "app", BUSYBOX_IMAGE, RUN_FOREVER);
        await s.cri.startContainer(app.id);
        const status = await s.cri.containerStatus(app.id);
        assertEquals(status.state, ContainerState.CONTAINER_RUNNING);
        for (const kind of ["net", "ipc", "uts"]) {
          assertEquals(await ns(status.pid, kind), await ns(pausePid, kind), kind);
        }
        // The CRI mounts the sandbox's files into the app container.
        const resolv = await Deno.readTextFile(`/proc/${status.pid}/root/etc/resolv.conf`);
        assertEquals(resolv, await Deno.readTextFile("/etc/resolv.conf"));
        await s.cri.stopContainer(app.id);
        await s.cri.removeContainer(app.id);
      },
    );

    await t.step(
      "StopPodSandbox: NOTREADY with 137, in the CRI's view and the agent's",
      async () => {
        const waiting = client.wait(hostPod.id, { timeoutMs: 30_000 });
        await s.cri.stopPod(hostPod.id);
        assertEquals(await s.cri.podState(hostPod.id), PodSandboxState.SANDBOX_NOTREADY);
        assertEquals((await waiting).exitStatus, 137);
        const verbose = await s.cri.podStatus(hostPod.id, { verbose: true });
        assertEquals(JSON.parse(verbose.info["info"]).exitStatus, 137, "crictl inspectp's info");
        await s.cri.stopPod(hostPod.id); // Stop may come twice
      },
    );

    await t.step(
      "RemovePodSandbox: no task, container, snapshot, files, mount or shim left",
      async () => {
        await s.cri.removePod(hostPod.id);
        await assertRejects(() => s.cri.podStatus(hostPod.id), NotFoundError);
        await nothingLeft(s, hostPod);
        // The agent keeps the record (with its removal), as for any sandbox.
        assertEquals((await client.wait(hostPod.id)).exitStatus, 137);
      },
    );

    await t.step(
      "a pod whose pause dies by itself: the CRI sees NOTREADY, the agent the true status",
      async () => {
        const pod = await s.cri.runPod("dies", { runtimeHandler: HANDLER });
        const pid = await readyPid(client, pod);
        Deno.kill(pid, "SIGKILL");
        assertEquals((await client.wait(pod.id, { timeoutMs: 30_000 })).exitStatus, 137);
        await eventually(
          "the CRI to see it NOTREADY",
          async () => (await s.cri.podState(pod.id)) === PodSandboxState.SANDBOX_NOTREADY,
        );
        await s.cri.stopPod(pod.id);
        await s.cri.removePod(pod.id);
        await nothingLeft(s, pod);
      },
    );
  } finally {
    client.close();
    await s.stop();
  }
});

Deno.test("podsandboxd's pods survive restarts of either side with their true exit statuses", async (t) => {
  const s = await SandboxerNode.start();
  let client = s.agent.client();
  try {
    const pods = await Promise.all(
      ["a", "b", "c"].map((n) => s.cri.runPod(`survive-${n}`, { runtimeHandler: HANDLER })),
    );
    const pids = await Promise.all(pods.map((p) => readyPid(client, p)));

    await t.step("containerd SIGKILLed and restarted; a pod dies meanwhile", async () => {
      await s.node.containerd.kill("SIGKILL");
      Deno.kill(pids[0], "SIGKILL");
      await sleep(2_000);
      await s.node.containerd.boot();
      // The CRI's recovery asks the agent (Status, Wait) and gets true answers.
      await eventually(
        "the dead pod NOTREADY in the CRI",
        async () => (await s.cri.podState(pods[0].id)) === PodSandboxState.SANDBOX_NOTREADY,
        { timeoutMs: 30_000 },
      );
      for (const pod of pods.slice(1)) {
        assertEquals(await s.cri.podState(pod.id), PodSandboxState.SANDBOX_READY, pod.name);
        // The CRI's start-up wipe of sandbox directories spared the running pods' files.
        const root = join(s.node.containerd.dir, "root", "io.containerd.grpc.v1.cri");
        for (const file of ["hostname", "hosts", "resolv.conf"]) {
          assert(await Deno.stat(join(root, "sandboxes", pod.id, file)), `${pod.name} ${file}`);
        }
      }
      const record = await client.get(pods[0].id);
      assertEquals([record.exitStatus, record.exitStatusKnown], [137, true]);
    });

    await t.step("the agent SIGKILLed and restarted: pods untouched, Wait resumes", async () => {
      client.close();
      await s.agent.stop("SIGKILL");
      for (const pid of pids.slice(1)) assert(await Deno.stat(`/proc/${pid}`), "still running");
      // Meanwhile the CRI's calls fail UNAVAILABLE (its Wait retries); the pods run on.
      await assertRejects(() => s.cri.podStatus(pods[1].id), UnavailableError);
      const agent = await s.restartAgent();
      client = agent.client();
      for (const pod of pods.slice(1)) {
        // containerd redials the agent with backoff (up to 3 s).
        await eventually(
          `${pod.name} READY through the restarted agent`,
          async () =>
            (await s.cri.podState(pod.id).catch(() => undefined)) ===
              PodSandboxState.SANDBOX_READY,
        );
      }
      // The CRI's Wait (retried on UNAVAILABLE) reconnects: a death is seen by the CRI.
      Deno.kill(pids[1], "SIGKILL");
      await eventually(
        "the CRI to see the pod NOTREADY",
        async () => (await s.cri.podState(pods[1].id)) === PodSandboxState.SANDBOX_NOTREADY,
        { timeoutMs: 30_000 },
      );
      assertEquals((await client.wait(pods[1].id)).exitStatus, 137);
    });

    for (const pod of pods) {
      await s.cri.stopPod(pod.id);
      await s.cri.removePod(pod.id);
      await nothingLeft(s, pod);
    }
  } finally {
    client.close();
    await s.stop();
  }
});

Deno.test("20 pods run and removed in parallel through podsandboxd leave nothing behind", async () => {
  const s = await SandboxerNode.start();
  try {
    const pods = await s.explained(() =>
      s.cri.runPods("par", 20, { runtimeHandler: HANDLER, concurrency: 10 })
    );
    for (const pod of pods) {
      assertEquals(await s.cri.podState(pod.id), PodSandboxState.SANDBOX_READY, pod.name);
    }
    await s.explained(() =>
      Promise.all(pods.map(async (pod) => {
        await s.cri.stopPod(pod.id);
        await s.cri.removePod(pod.id);
      }))
    );
    for (const pod of pods) await nothingLeft(s, pod);
  } finally {
    await s.stop();
  }
});

Deno.test("a pod with its own network namespace (CNI): the pause joins the CRI's netns", async () => {
  const s = await SandboxerNode.start({ cni: true });
  try {
    const pod = await s.cri.runPod("netns", {
      runtimeHandler: HANDLER,
      network: NamespaceMode.POD,
      hostname: "netns-pod",
    });
    const client = s.agent.client();
    try {
      const pid = await readyPid(client, pod);
      assert(await ns(pid, "net") !== await Deno.readLink("/proc/self/ns/net"), "its own netns");
      const app = await s.cri.createContainer(pod, "app", BUSYBOX_IMAGE, RUN_FOREVER);
      await s.cri.startContainer(app.id);
      const status = await s.cri.containerStatus(app.id);
      assertEquals(await ns(status.pid, "net"), await ns(pid, "net"));
      assertEquals(
        (await Deno.readTextFile(`/proc/${status.pid}/root/etc/hostname`)).trim(),
        "netns-pod",
      );
    } finally {
      client.close();
    }
    await s.cri.stopPod(pod.id);
    await s.cri.removePod(pod.id);
    await nothingLeft(s, pod);
  } finally {
    await s.stop();
  }
});

Deno.test("a Start that fails half-way (the pause image is missing) leaves nothing behind", async () => {
  const s = await SandboxerNode.start({
    agentArgs: ["--pause-image", "docker.io/local/not-pulled:latest"],
  });
  try {
    const err = await assertRejects(
      () => s.cri.runPod("nopause", { runtimeHandler: HANDLER }),
      FailedPreconditionError,
    );
    assertMatch(String(err), /docker\.io\/local\/not-pulled:latest/);
    const ids = (await s.node.containerd.ctr(CRI_NAMESPACE, ["containers", "ls", "-q"])).stdout;
    assertEquals(ids.trim(), "", "no container left");
    // The images' snapshots are committed; a sandbox's would be active.
    const snaps = (await s.node.containerd.ctr(CRI_NAMESPACE, ["snapshots", "ls"])).stdout;
    assert(!/\bActive\b/.test(snaps), `no active snapshot left:\n${snaps}`);
  } finally {
    await s.stop();
  }
});
