/**
 * The shim adapter against real shims: a private containerd (the selected version) runs
 * busybox containers; the test finds each container's shim in containerd's state
 * directory and talks ttrpc to it. The key property: a shim answers Wait with the true
 * status and time also when containerd was SIGKILLed before the container died.
 */
import { join } from "node:path";
import { CancelledError, NotFoundError, UnavailableError } from "../src/errors.ts";
import { StateDirShimLocator } from "../src/shim/locator.ts";
import { dialShim } from "../src/shim/task_client.ts";
import type { ShimClient, ShimExit } from "../src/shim/types.ts";
import { instantToMillis } from "../src/time.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { PrivateContainerd } from "./harness/containerd.ts";
import {
  keepsExitedTasksAcrossRestart,
  selectedContainerdVersion,
} from "./harness/containerd_version.ts";
import { Containers, importImages, uniqueId } from "./harness/containers.ts";
import { NON_LOOPBACK_IPV4 } from "../src/permissions/flags.ts";
import { alive, eventually, run } from "./harness/process.ts";

const NS = "psd-shim";
const EXIT_7_ON_TERM = ["sh", "-c", "trap 'exit 7' TERM; sleep 100000 & wait"];
const RUN_FOREVER = ["sleep", "100000"];
/** Bounds every call that should answer promptly: a test must fail, not hang. */
const PROMPT = { timeoutMs: 10_000 };

/** Marks `p` handled (a step that fails midway must not leave unhandled rejections); returns it. */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => {});
  return p;
}

/** Settles with "pending" if `p` has not settled within `ms`. */
async function stillPending(p: Promise<unknown>, ms = 200): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"pending">((r) => timer = setTimeout(() => r("pending"), ms));
  const outcome = await Promise.race([p.then(() => "settled", () => "settled"), timeout]);
  clearTimeout(timer);
  return outcome === "pending";
}

/**
 * The scenarios against one containerd; the task API expected (v2 or v3) follows from
 * the version it reports. The containerd is the selected one (PODSANDBOXD_CONTAINERD:
 * .ci/run runs this file on 1.6, 1.7 and 2.1).
 */
function shimTests(label: string, start: () => Promise<PrivateContainerd>): void {
  Deno.test(`shim adapter against the real shims of ${label}`, (t) => shimScenarios(t, start));
}

shimTests(
  `a private containerd ${selectedContainerdVersion()}`,
  () => PrivateContainerd.start(),
);

async function shimScenarios(
  t: Deno.TestContext,
  start: () => Promise<PrivateContainerd>,
): Promise<void> {
  const containerd = await start();
  const c = new Containers(containerd, NS);
  const locator = new StateDirShimLocator(join(containerd.dir, "state"));
  const clients: ShimClient[] = [];
  /** Container processes orphaned by a killed shim: the harness cannot reach them. */
  const orphans: number[] = [];
  const dial = async (id: string) => {
    const client = await dialShim(await locator.locate(NS, id));
    clients.push(client);
    return client;
  };
  try {
    await importImages(containerd, NS);
    const { version } = await c.client.version();
    // containerd 2.x shims are found through bootstrap.json version 3.
    const api = Number(version.replace(/^v/, "").split(".")[0]) >= 2 ? 3 : 2;

    await t.step(
      "the shim is found in the state directory; state answers the pid; a pending wait answers 7 at containerd's own exit time",
      async () => {
        const id = uniqueId("seven");
        await c.run(id, EXIT_7_ON_TERM);
        await c.termHandlerInstalled(id);
        const endpoint = await locator.locate(NS, id);
        assertEquals(endpoint.api, api);
        assertEquals(endpoint.service, `containerd.task.v${api}.Task`);
        // Measured: shim sockets live in /run/containerd/s/, also for a private containerd.
        assertMatch(endpoint.socket, /^\/run\/containerd\/s\/[0-9a-f]{64}$/);
        const shim = await dial(id);
        const task = await c.task(id);
        const state = await shim.state(id, PROMPT);
        assertEquals([state.id, state.pid, state.status], [id, task.pid, "running"]);
        const waiting = handled(shim.wait(id));
        assert(await stillPending(waiting), "wait blocks while the container runs");
        await c.kill(id, "SIGTERM");
        const exit = await waiting;
        const real = await c.task(id);
        assertEquals(real.status, "stopped");
        assertEquals(exit, { exitStatus: 7, exitedAt: real.exitedAt });
        const after = await shim.state(id, PROMPT);
        assertEquals([after.status, after.exitStatus, after.exitedAt], [
          "stopped",
          7,
          real.exitedAt,
        ]);
        // A wait after the exit answers at once with the same.
        assertEquals(await shim.wait(id, PROMPT), exit);
      },
    );

    await t.step("SIGKILL: wait answers 137", async () => {
      const id = uniqueId("killed");
      await c.run(id, RUN_FOREVER);
      const shim = await dial(id);
      const waiting = handled(shim.wait(id));
      assert(await stillPending(waiting));
      await c.kill(id, "SIGKILL");
      const exit = await waiting;
      assertEquals(exit, { exitStatus: 137, exitedAt: (await c.task(id)).exitedAt });
    });

    await t.step(
      "containerd SIGKILLed, then the containers (SIGTERM → 7, SIGKILL → 137): the shims still answer the true status and time",
      async () => {
        const cases = [
          { id: uniqueId("outage-term"), command: EXIT_7_ON_TERM, signal: "SIGTERM", status: 7 },
          { id: uniqueId("outage-kill"), command: RUN_FOREVER, signal: "SIGKILL", status: 137 },
        ] as const;
        const running = [];
        for (const k of cases) {
          await c.run(k.id, [...k.command]);
          if (k.signal === "SIGTERM") await c.termHandlerInstalled(k.id);
          const { pid } = await c.task(k.id);
          const shim = await dial(k.id);
          const waiting = handled(shim.wait(k.id));
          assert(await stillPending(waiting));
          running.push({ ...k, pid, waiting });
        }
        await containerd.kill("SIGKILL");
        try {
          for (const k of running) {
            // containerd is dead: the shim can still be found and dialed afresh.
            const again = await dial(k.id);
            assertEquals((await again.state(k.id, PROMPT)).pid, k.pid);
            const before = Date.now();
            Deno.kill(k.pid, k.signal);
            const exit = await k.waiting;
            const after = Date.now();
            assertEquals(exit.exitStatus, k.status);
            const at = instantToMillis(exit.exitedAt!);
            assert(
              at >= before - 1 && at <= after + 1,
              `exitedAt ${exit.exitedAt} in [${before}, ${after}]`,
            );
            Object.assign(k, { exit });
          }
        } finally {
          await containerd.boot();
        }
        for (const k of running as Array<typeof running[number] & { exit: ShimExit }>) {
          if (!keepsExitedTasksAcrossRestart(containerd.version)) {
            // 1.7 and 2.1 delete, while starting, a task whose init exited while they
            // were down: the shim's answer was the only one there was.
            await assertRejects(() => c.task(k.id), NotFoundError);
            continue;
          }
          // Back up, 1.6 reads each exit from the same shim: identical to the nanosecond.
          const real = await eventually("containerd to see the exit", async () => {
            const task = await c.task(k.id);
            return task.status === "stopped" ? task : undefined;
          });
          assertEquals([real.exitStatus, real.exitedAt], [k.status, k.exit.exitedAt]);
        }
      },
    );

    await t.step(
      "many concurrent calls on one connection; aborting one wait leaves the others working",
      async () => {
        const id = uniqueId("busy");
        await c.run(id, RUN_FOREVER);
        const { pid } = await c.task(id);
        const shim = await dial(id);
        const aborts = Array.from({ length: 20 }, () => new AbortController());
        const waits = aborts.map((a) => handled(shim.wait(id, { signal: a.signal })));
        const states = await Promise.all(
          Array.from({ length: 500 }, () => shim.state(id, PROMPT)),
        );
        assert(states.every((s) => s.pid === pid && s.status === "running"));
        aborts[0].abort();
        await assertRejects(() => waits[0], CancelledError);
        assertEquals((await shim.state(id, PROMPT)).pid, pid);
        for (const w of waits.slice(1)) assert(await stillPending(w, 20));
        await c.kill(id, "SIGKILL");
        const exits = await Promise.all(waits.slice(1));
        const real = await c.task(id);
        for (const e of exits) assertEquals(e, { exitStatus: 137, exitedAt: real.exitedAt });
      },
    );

    await t.step(
      "Deno grants: a unix net grant on the socket directory does not reach a shim; bare --allow-net with read+write on it does",
      async () => {
        const id = uniqueId("grants");
        await c.run(id, RUN_FOREVER);
        const { pid } = await c.task(id);
        const { socket } = await locator.locate(NS, id);
        const state = join(containerd.dir, "state");
        const sockets = "/run/containerd/s";
        const probe = async (...flags: string[]) => {
          const res = await run(Deno.execPath(), [
            "run",
            "--no-prompt",
            "--config",
            new URL("../deno.json", import.meta.url).pathname,
            ...flags,
            new URL("./harness/shim_probe.ts", import.meta.url).pathname,
            state,
            NS,
            id,
          ]);
          return JSON.parse(res.stdout);
        };
        const rw = [`--allow-read=${state},${sockets}`, `--allow-write=${sockets}`];
        // What works: the exact socket (unknowable in advance), or any unix socket.
        assertEquals(await probe(...rw, `--allow-net=unix:${socket}`), { pid });
        assertEquals(await probe(...rw, "--allow-net"), { pid });
        // Bare --allow-net with every non-loopback IPv4 range denied still reaches it.
        assertEquals(
          await probe(...rw, "--allow-net", `--deny-net=${NON_LOOPBACK_IPV4.join(",")}`),
          { pid },
        );
        // What does not: a unix grant on the directory, or no write grant on the socket.
        const dirGrant = await probe(...rw, `--allow-net=unix:${sockets}`);
        assertEquals(dirGrant.error, "NotCapable");
        assertMatch(dirGrant.message, /Requires net access to "unix:\/run\/containerd\/s\//);
        const readOnly = await probe(`--allow-read=${state},${sockets}`, "--allow-net");
        assertEquals(readOnly.error, "NotCapable");
        assertMatch(readOnly.message, /Requires write access to "\/run\/containerd\/s\//);
      },
    );

    await t.step("the shim SIGKILLed: pending calls reject UnavailableError promptly", async () => {
      const id = uniqueId("shimkill");
      await c.run(id, RUN_FOREVER);
      const { pid } = await c.task(id);
      orphans.push(pid);
      const shim = await dial(id);
      const waits = [handled(shim.wait(id)), handled(shim.wait(id))];
      assert(await stillPending(waits[0]));
      // The shim is the container's parent (1.6 writes no shim.pid into the bundle).
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      const shimPid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      assertMatch(await Deno.readTextFile(`/proc/${shimPid}/cmdline`), /containerd-shim-runc-v2/);
      assert(alive(shimPid), `shim pid ${shimPid}`);
      const killed = performance.now();
      Deno.kill(shimPid, "SIGKILL");
      for (const w of waits) {
        const err = await assertRejects(() => w, UnavailableError);
        assertMatch(err.message, /connection closed by the peer/);
      }
      const took = performance.now() - killed;
      // A SIGKILLed shim leaves its socket file behind in /run/containerd/s: remove ours.
      await eventually("the shim to exit", () => !alive(shimPid));
      await Deno.remove(shim.endpoint.socket).catch(() => {});
      assert(took < 1_000, `rejected ${took.toFixed(0)} ms after the kill`);
      assert((await shim.closed) instanceof UnavailableError);
      await assertRejects(() => shim.state(id), UnavailableError);
    });
  } finally {
    for (const client of clients) await client[Symbol.asyncDispose]();
    for (const pid of orphans.filter(alive)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // Gone meanwhile.
      }
    }
    c.close();
    await containerd.stop();
  }
}
