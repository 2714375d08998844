/**
 * ShimWatcher: watches find and dial their shims only once `startAfter`
 * settles, at most MAX_STARTING_WATCHES at a time, and every watch still gets its
 * shim's answer; a watch ended while it waits for its turn never touches its shim; a
 * lost shim is not looked for again until the sandbox is forgotten.
 */
import { MAX_STARTING_WATCHES, ShimWatcher } from "../../src/controller/shim_watch.ts";
import { NotFoundError, UnavailableError } from "../../src/errors.ts";
import type { ShimClient, ShimEndpoint, ShimExit } from "../../src/shim/mod.ts";
import { assert, assertEquals } from "../harness/assert.ts";

/** A locator whose answers the test releases, counting calls in flight. */
class HeldLocator {
  inFlight = 0;
  maxInFlight = 0;
  readonly located: string[] = [];
  #release = Promise.withResolvers<void>();

  release(): void {
    this.#release.resolve();
  }

  async locate(namespace: string, id: string): Promise<ShimEndpoint> {
    this.located.push(id);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      await this.#release.promise;
      if (id.startsWith("gone")) throw new NotFoundError(`no shim files for ${id}`);
      return {
        namespace,
        id,
        socket: `/fake/${id}`,
        api: 2,
        service: "containerd.task.v2.Task",
        source: "address",
      };
    } finally {
      this.inFlight--;
    }
  }

  list(): Promise<string[]> {
    return Promise.resolve([]);
  }
}

/** A shim that answers every Wait at once with the id's number as exit status. */
function fakeClient(endpoint: ShimEndpoint): ShimClient {
  const closed = Promise.withResolvers<UnavailableError>();
  return {
    endpoint,
    closed: closed.promise,
    wait: (id: string) => Promise.resolve({ exitStatus: Number(id.split("-")[1]) }),
    state: () => Promise.reject(new UnavailableError("not used")),
    close: () => closed.resolve(new UnavailableError("closed")),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("shim watches start after startAfter, at most MAX_STARTING_WATCHES at a time, and all answer", async () => {
  const locator = new HeldLocator();
  const gate = Promise.withResolvers<void>();
  const exits = new Map<string, ShimExit>();
  const lost = new Map<string, string>();
  const watcher = new ShimWatcher({
    namespace: "ns",
    locator,
    dial: (endpoint) => Promise.resolve(fakeClient(endpoint)),
    onExit: (id, exit) => exits.set(id, exit),
    onLost: (id, reason) => lost.set(id, reason),
    startAfter: gate.promise,
  });
  const count = MAX_STARTING_WATCHES * 6;
  const ids = Array.from({ length: count }, (_, i) => `sb-${i}`);
  for (const id of ids) watcher.watch(id);
  watcher.watch("gone-1");
  await tick();
  assertEquals(locator.located.length, 0, "located before startAfter settled");
  assertEquals(watcher.size, count + 1);

  gate.resolve();
  await tick();
  assertEquals(locator.inFlight, MAX_STARTING_WATCHES);
  locator.release();
  for (let i = 0; i < 100 && exits.size + lost.size < count + 1; i++) await tick();
  assert(
    locator.maxInFlight <= MAX_STARTING_WATCHES,
    `${locator.maxInFlight} watches located their shims at once`,
  );
  assertEquals(exits.size, count);
  for (const id of ids) assertEquals(exits.get(id)?.exitStatus, Number(id.split("-")[1]));
  assert(lost.get("gone-1")?.includes("no shim"), `gone-1: ${lost.get("gone-1")}`);
  assertEquals(watcher.size, 0);
  assertEquals(watcher.connections, 0);
  watcher.close();
});

Deno.test("a watch ended while it waits for its turn never looks for its shim", async () => {
  const locator = new HeldLocator();
  const watcher = new ShimWatcher({
    namespace: "ns",
    locator,
    dial: (endpoint) => Promise.resolve(fakeClient(endpoint)),
    onExit: () => {},
  });
  const first = Array.from({ length: MAX_STARTING_WATCHES }, (_, i) => `sb-${i}`);
  for (const id of first) watcher.watch(id);
  watcher.watch("sb-queued");
  await tick();
  assertEquals(locator.located.length, MAX_STARTING_WATCHES);
  watcher.unwatch("sb-queued");
  locator.release();
  for (let i = 0; i < 50 && watcher.size > 0; i++) await tick();
  assertEquals(watcher.size, 0);
  assert(!locator.located.includes("sb-queued"), "the ended watch looked for its shim");
  watcher.close();
});

Deno.test("a sandbox whose shim was lost is not looked for again until unwatch forgets it", async () => {
  const locator = new HeldLocator();
  locator.release();
  const lost: string[] = [];
  const watcher = new ShimWatcher({
    namespace: "ns",
    locator,
    dial: (endpoint) => Promise.resolve(fakeClient(endpoint)),
    onExit: () => {},
    onLost: (id) => lost.push(id),
  });
  const settle = async () => {
    for (let i = 0; i < 20 && watcher.size > 0; i++) await tick();
  };
  watcher.watch("gone-1");
  await settle();
  assertEquals(lost, ["gone-1"]);
  // A resync finds it running again: no second search, no second log line.
  watcher.watch("gone-1");
  await settle();
  assertEquals(locator.located, ["gone-1"]);
  assertEquals(lost, ["gone-1"]);
  // Its exit recorded (or the sandbox removed): a new sandbox with the id is watched.
  watcher.unwatch("gone-1");
  watcher.watch("gone-1");
  await settle();
  assertEquals(locator.located, ["gone-1", "gone-1"]);
  assertEquals(lost, ["gone-1", "gone-1"]);
  watcher.close();
});
