/**
 * Hostile input and least privilege: the socket and state files, refusals that name
 * what is wrong, the permission set, request limits, and garbage on the socket.
 */
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { ResourceExhaustedError } from "../src/errors.ts";
import { ApiServer } from "../src/server/server.ts";
import { ControllerService } from "../src/gen/containerd/services/sandbox/v1/sandbox.ts";
import { HealthService } from "../src/gen/grpc/health/v1/health.ts";
import { unaryCall } from "../src/grpc/call.ts";
import { assert, assertEquals, assertMatch, assertRejects } from "./harness/assert.ts";
import { AgentProcess } from "./harness/agent.ts";
import { compilePermissionSet } from "../src/permissions/compile.ts";
import { permissionFlags } from "../src/permissions/flags.ts";
import { PrivateContainerd } from "./harness/containerd.ts";
import { Containers, importImages, uniqueId } from "./harness/containers.ts";
import { alive, eventually, run } from "./harness/process.ts";
import { stubService } from "./harness/stub_service.ts";

const NS = "psd-sec";
const ROOT = new URL("..", import.meta.url).pathname;

/** Starts an agent expected to refuse; returns its exit code and log. */
async function refusal(options: { containerdSocket: string; dir: string; args: string[] }) {
  const agent = await AgentProcess.start({ ...options, namespace: NS, noWait: true });
  const status = await agent.status;
  await agent.stop(); // collects the rest of its output
  return { code: status.code, log: agent.logs.map((l) => l.message ?? "").join("\n") };
}

/** Runs `body` against an agent with no containerd (the store answers without it). */
async function withLoneAgent(body: (agent: AgentProcess) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "psd-s-" });
  const agent = await AgentProcess.start({
    containerdSocket: join(dir, "no-containerd.sock"),
    dir,
    namespace: NS,
  });
  try {
    await body(agent);
  } finally {
    await agent.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

function fdCount(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return Number(m?.[1] ?? 0);
}

Deno.test("socket and state files: modes, groups, and refusals that name the path", async (t) => {
  const containerd = await PrivateContainerd.start();
  const dir = await Deno.makeTempDir({ prefix: "psd-s-" });
  const socketArgs = (more: string[]) => ({ containerdSocket: containerd.socket, dir, args: more });
  try {
    await t.step(
      "the socket is 0660 and its --socket-group's; the state file 0600 in a 0700 directory",
      async () => {
        const agent = await AgentProcess.start({
          containerdSocket: containerd.socket,
          dir,
          namespace: NS,
          args: ["--socket-group", "adm"],
        });
        try {
          const socket = await Deno.lstat(agent.socket);
          assertEquals(socket.mode! & 0o777, 0o660);
          assertEquals(socket.gid, 4, "group adm (gid 4)");
          assertEquals((await Deno.stat(agent.stateDir)).mode! & 0o777, 0o700);
          assertEquals(
            (await Deno.stat(join(agent.stateDir, "podsandboxd.kv"))).mode! & 0o777,
            0o600,
          );
          assertEquals((await Deno.stat(dir)).mode! & 0o002, 0, "not world-writable");
        } finally {
          await agent.stop();
        }
      },
    );

    await t.step(
      "a live agent on the socket path: the second refuses to start, naming the path",
      async () => {
        const first = await AgentProcess.start({
          containerdSocket: containerd.socket,
          dir,
          namespace: NS,
        });
        try {
          const other = join(dir, "other");
          const res = await refusal(socketArgs(["--state", other]));
          assertEquals(res.code, 1);
          assertMatch(
            res.log,
            /another process is already serving on .*agent\.sock; is podsandboxd running\?/,
          );
        } finally {
          await first.stop("SIGKILL"); // leaves a stale socket behind
        }
        assert((await Deno.lstat(join(dir, "agent.sock"))).isSocket, "a stale socket remains");
        const next = await AgentProcess.start({
          containerdSocket: containerd.socket,
          dir,
          namespace: NS,
        });
        await next.waitForLog((l) => l.message?.startsWith("replacing the stale socket") ?? false);
        await next.stop();
      },
    );

    await t.step(
      "refused: symlinks, world-writable directories, non-socket files, unknown groups",
      async () => {
        const target = join(dir, "real.sock");
        await Deno.symlink(target, join(dir, "link.sock"));
        await Deno.mkdir(join(dir, "realdir"));
        await Deno.symlink(join(dir, "realdir"), join(dir, "linkdir"));
        await Deno.mkdir(join(dir, "open"), { mode: 0o777 });
        await Deno.chmod(join(dir, "open"), 0o777);
        await Deno.writeTextFile(join(dir, "file.sock"), "precious");
        await Deno.mkdir(join(dir, "state-real"));
        await Deno.symlink(join(dir, "state-real"), join(dir, "state-link"));
        await Deno.mkdir(join(dir, "state-open"));
        await Deno.chmod(join(dir, "state-open"), 0o777);
        const cases: Array<[string[], RegExp]> = [
          [["--socket", join(dir, "link.sock")], /link\.sock is a symlink; refusing to replace it/],
          [["--socket", join(dir, "linkdir", "a.sock")], /socket directory .*linkdir is a symlink/],
          [["--socket", join(dir, "open", "a.sock")], /socket directory .*open is world-writable/],
          [
            ["--socket", join(dir, "file.sock")],
            /file\.sock exists and is not a socket; refusing to replace it/,
          ],
          [["--socket-group", "no-such-group"], /socket group "no-such-group" does not exist/],
          [["--state", join(dir, "state-link")], /state directory .*state-link is a symlink/],
          [["--state", join(dir, "state-open")], /state directory .*state-open is world-writable/],
        ];
        for (const [args, pattern] of cases) {
          const res = await refusal(socketArgs(args));
          assertEquals(res.code, 1, args.join(" "));
          assertMatch(res.log, pattern);
        }
        assertEquals(await Deno.readTextFile(join(dir, "file.sock")), "precious", "never removed");
      },
    );

    await t.step(
      "a corrupt or truncated state file: refuse with the safe way out, touch nothing",
      async () => {
        // A real store, then damaged two ways.
        const good = join(dir, "good");
        const agent = await AgentProcess.start({
          containerdSocket: containerd.socket,
          dir,
          namespace: NS,
          args: ["--state", good],
        });
        await agent.stop();
        const file = join(good, "podsandboxd.kv");
        const bytes = await Deno.readFile(file);
        for (
          const [name, damaged] of [
            ["garbage", new TextEncoder().encode("this is not a database ".repeat(400))],
            ["truncated", bytes.subarray(0, Math.floor(bytes.length / 2) + 100)],
          ] as const
        ) {
          const state = join(dir, `state-${name}`);
          await Deno.mkdir(state, { mode: 0o700 });
          await Deno.writeFile(join(state, "podsandboxd.kv"), damaged, { mode: 0o600 });
          const before = await sha256(join(state, "podsandboxd.kv"));
          const res = await refusal(socketArgs(["--state", state]));
          assertEquals(res.code, 1, name);
          assertMatch(
            res.log,
            /state file .*podsandboxd\.kv cannot be read .*It is left untouched/,
          );
          assertMatch(res.log, /mv .*podsandboxd\.kv .*podsandboxd\.kv\.corrupt/);
          assertEquals(await sha256(join(state, "podsandboxd.kv")), before, `${name}: untouched`);
        }
      },
    );

    await t.step(
      "run by hand with the compiled binary's grants, a path outside them exits 2 naming the path, the permission and the fix, creating nothing",
      async () => {
        const outside = "/opt/podsandboxd-not-granted";
        const res = await run(Deno.execPath(), [
          "run",
          "--config",
          `${ROOT}deno.json`,
          ...permissionFlags(compilePermissionSet()),
          `${ROOT}main.ts`,
          "serve",
          "--address",
          containerd.socket,
          "--socket",
          join(dir, "p.sock"),
          "--state",
          outside,
        ], { allowFailure: true });
        assertEquals(res.code, 2, res.stderr);
        assertMatch(
          res.stderr,
          /--state \/opt\/podsandboxd-not-granted: read \/opt\/podsandboxd-not-granted, write \/opt\/podsandboxd-not-granted/,
        );
        assertMatch(
          res.stderr,
          new RegExp(
            // Net is not missing: the baked grants reach any unix socket (shim wait).
            `--address ${containerd.socket}: read ${containerd.socket}, write ${containerd.socket}\n`,
          ),
        );
        assertMatch(res.stderr, /Run it through deno task podsandboxd/);
        assertMatch(res.stderr, /--allow-read=\/opt\/podsandboxd-not-granted,/);
        assertEquals(await Deno.stat(outside).catch(() => null), null, "nothing created there");
      },
    );
  } finally {
    await containerd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("hostile clients: limits answer RESOURCE_EXHAUSTED; after garbage and 3,000 abandoned connections the agent still answers and its fds are back to baseline", async () => {
  const containerd = await PrivateContainerd.start();
  const dir = await Deno.makeTempDir({ prefix: "psd-s-" });
  const c = new Containers(containerd, NS);
  let agent: AgentProcess | undefined;
  const grpcClient = () =>
    new grpc.Client(`unix://${join(dir, "agent.sock")}`, grpc.credentials.createInsecure());
  try {
    await importImages(containerd, NS);
    const id = uniqueId("target");
    await c.run(id, ["sleep", "100000"]);
    agent = await AgentProcess.start({
      containerdSocket: containerd.socket,
      dir,
      namespace: NS,
      args: ["--max-waiters", "2"],
    });
    const client = agent.client();
    try {
      // Two waiters are allowed, a third is refused instead of growing memory.
      const abort = new AbortController();
      const blocked = [
        client.wait(id, { signal: abort.signal }),
        client.wait(id, { signal: abort.signal }),
      ];
      blocked.forEach((p) => p.catch(() => {}));
      await eventually(
        "two registered waiters",
        () =>
          agent!.logs.filter((l) => l.message === `waiting for sandbox ${NS}/${id}`).length === 2,
      );
      const third = await assertRejects(() => client.wait(id), ResourceExhaustedError);
      assertMatch(third.message, /too many concurrent waiters \(2, --max-waiters\)/);
      abort.abort();

      // A request far over the size limit.
      const raw = grpcClient();
      try {
        await assertRejects(
          () =>
            unaryCall(raw, ControllerService.wait, {
              sandboxId: "x".repeat(200_000),
              sandboxer: "",
            }, {
              what: "oversized wait",
              timeoutMs: 5_000,
            }),
          ResourceExhaustedError,
        );
      } finally {
        raw.close();
      }

      const pid = agent.pid;
      const answering = async () => (await client.get(id)).id === id;
      assert(await answering());
      await new Promise((r) => setTimeout(r, 200));
      const fdsBefore = fdCount(pid);
      const rssBefore = rssKiB(pid);

      // Garbage, an HTTP/1.1 request, half-open HTTP/2, and 1,000 connections abandoned.
      const round = async (): Promise<number> => {
        const conns: Deno.UnixConn[] = [];
        const open = async () => {
          // A full listen backlog answers EAGAIN: the client backs off, as any would.
          for (;;) {
            try {
              return await Deno.connect({ transport: "unix", path: agent!.socket });
            } catch (err) {
              if (!(err instanceof Deno.errors.WouldBlock)) throw err;
              await new Promise((r) => setTimeout(r, 10));
            }
          }
        };
        try {
          for (
            const payload of [
              crypto.getRandomValues(new Uint8Array(4096)),
              new TextEncoder().encode("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
              new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), // preface, then silence
              new TextEncoder().encode("PRI * HTTP/2.0\r\n"), // half a preface
            ]
          ) {
            const conn = await open();
            await conn.write(payload).catch(() => 0);
            conns.push(conn);
          }
          for (let i = 0; i < 1_000; i++) conns.push(await open());
          assert(await answering(), "still answering with 1,004 idle connections open");
        } finally {
          for (const conn of conns) {
            try {
              conn.close();
            } catch {
              // The agent may have closed it already (garbage).
            }
          }
        }
        await eventually(
          "file descriptors back to their baseline",
          () => fdCount(pid) <= fdsBefore + 2,
          {
            timeoutMs: 15_000,
          },
        );
        assert(await answering(), "still answering afterwards");
        return rssKiB(pid);
      };
      // RSS does not fall back (V8 keeps the heap pages it grew; the JS heap itself
      // returns to its baseline, see the in-process test below), but it must plateau.
      const rounds = [await round(), await round(), await round()];
      assert(
        Math.max(...rounds) < 300 * 1024,
        `RSS ${rssBefore} KiB → ${rounds.join(", ")} after rounds of 1,004 connections`,
      );
    } finally {
      client.close();
    }
  } finally {
    await agent?.stop();
    c.close();
    await containerd.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("the server's JS heap returns to its baseline after 3,000 abandoned connections and garbage", async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  assert(gc, "the test runner must pass --v8-flags=--expose-gc (scripts/test.sh does)");
  const dir = await Deno.makeTempDir({ prefix: "psd-s-" });
  const socketPath = join(dir, "a.sock");
  const server = await ApiServer.start({ socketPath, service: stubService(NS) });
  const heap = () => {
    gc();
    return Deno.memoryUsage().heapUsed;
  };
  const fds = () => [...Deno.readDirSync("/proc/self/fd")].length;
  try {
    const baselineFds = fds();
    const baselineHeap = heap();
    for (let r = 0; r < 3; r++) {
      const conns: Deno.UnixConn[] = [];
      for (let i = 0; i < 1_000; i++) {
        try {
          const conn = await Deno.connect({ transport: "unix", path: socketPath });
          if (i % 100 === 0) {
            await conn.write(crypto.getRandomValues(new Uint8Array(512))).catch(() => 0);
          }
          conns.push(conn);
        } catch (err) {
          if (!(err instanceof Deno.errors.WouldBlock)) throw err;
          i--;
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // already closed by the server (garbage)
        }
      }
      // Not a timing test: under load the server takes a while to see 1,000 hang-ups.
      await eventually("server-side sockets to close", () => fds() <= baselineFds, {
        timeoutMs: 60_000,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    const after = heap();
    assert(
      after < baselineHeap + 4 * 1024 * 1024,
      `heap used ${baselineHeap >> 10} KiB → ${after >> 10} KiB after collection`,
    );
  } finally {
    await server.close(100);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a client the stream cap leaves alone that closes after 300 calls does not take the agent down", async () => {
  // The cap does not apply to grpc-go's user-agent (containerd's proxy, which sends no
  // GOAWAY when it closes). A Node/Deno client claiming it closes with a GOAWAY after 300
  // calls on one connection: that always aborted Deno 2.9.6's node:http2 before the agent
  // dropped clients' GOAWAY frames (src/server/goaway_filter.ts) — the same abort a few
  // calls then a close hit now and then under load.
  await withLoneAgent(async (agent) => {
    for (let round = 0; round < 2; round++) {
      const raw = new grpc.Client(`unix://${agent.socket}`, grpc.credentials.createInsecure(), {
        "grpc.primary_user_agent": "grpc-go/1.70.0",
        "grpc.use_local_subchannel_pool": 1,
      });
      for (let i = 0; i < 300; i++) {
        const answer = await unaryCall(raw, HealthService.check, { service: "" }, {
          what: "health",
          timeoutMs: 5_000,
        });
        assert(answer.status !== undefined, `call ${i} of round ${round}`);
      }
      raw.close();
      await new Promise((r) => setTimeout(r, 500));
      assert(alive(agent.pid), `the agent survived hang-up ${round + 1}`);
    }
  });
});

Deno.test("a client that makes 120 calls at once on a fresh connection and hangs up does not take the agent down", async () => {
  // The same abort needs fewer streams when they were open together: ~90 concurrent
  // calls on a fresh connection, then a hang-up, aborted Deno 2.9.6 (SIGABRT or SIGSEGV)
  // under the earlier cap of 200; the cap sits below that count.
  await withLoneAgent(async (agent) => {
    for (let round = 0; round < 3; round++) {
      const client = agent.client();
      // Every call answered: one refused or failed rejects.
      await Promise.all(Array.from({ length: 120 }, () => client.platform()));
      client.close();
      await new Promise((r) => setTimeout(r, 300));
      assert(alive(agent.pid), `the agent survived hang-up ${round + 1}`);
    }
  });
});

Deno.test("a client that makes 1,000 calls on one connection and hangs up does not take the agent down", async () => {
  // Deno 2.9's node:http2 aborts on such a hang-up (denoland/deno#36788); the server's
  // stream cap (src/server/connection_cap.ts) keeps connections below the fatal count.
  await withLoneAgent(async (agent) => {
    for (let round = 0; round < 2; round++) {
      const client = agent.client();
      const outcomes = new Map<string, number>();
      const refusals = new Set<string>();
      // Platform is answered from the agent alone (containerd is absent here).
      const call = () =>
        client.platform().then(() => "answered", (err) => {
          refusals.add(`${(err as Error).name}: ${(err as Error).message}`.slice(0, 300));
          return (err as Error).name;
        }).then((o) => outcomes.set(o, (outcomes.get(o) ?? 0) + 1));
      for (let i = 0; i < 500; i++) await call();
      // Bursts of at most the cap (64): calls in flight when the server's GOAWAY goes out
      // are refused and retried once by grpc-js on a new connection (see README, Security).
      for (let i = 0; i < 10; i++) await Promise.all(Array.from({ length: 50 }, call));
      client.close();
      // The sequential calls all answer; of the bursts, calls caught by the server's GOAWAY
      // may be refused (the cap's price, README Security) — never answered wrongly.
      const answered = outcomes.get("answered") ?? 0;
      const unanswered = [...outcomes].filter(([o]) => o !== "answered");
      assert(
        answered >= 900 &&
          unanswered.every(([o]) => o === "RemoteError" || o === "UnavailableError"),
        `outcomes ${JSON.stringify([...outcomes])}; refusals: ${[...refusals].join(" | ")}`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
    assert(alive(agent.pid), "the agent survived its clients hanging up");
    const fresh = agent.client();
    try {
      assertEquals(await fresh.health(), "NOT_SERVING"); // answering (containerd is absent)
    } finally {
      fresh.close();
    }
  });
});
