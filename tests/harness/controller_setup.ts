/**
 * A Controller on a scripted fake containerd and a real Deno KV store (in memory, or a
 * file for restart tests), for the controller tests.
 *
 * @module
 */
import { Controller, type ControllerOptions } from "../../src/controller/controller.ts";
import { KvSandboxStore, type KvStoreOptions } from "../../src/store/kv_store.ts";
import type { SandboxStore } from "../../src/store/types.ts";
import { assertEquals } from "./assert.ts";
import { FakeContainerd } from "./fake_containerd.ts";

export const NS = "k8s.io";
export const FILTERS = ['labels."io.cri-containerd.kind"==sandbox'];
export const key = (id: string, namespace = NS) => ({ namespace, id });

export interface Setup {
  fake: FakeContainerd;
  store: KvSandboxStore;
  controller: Controller;
  /** Lets already-emitted events be dispatched and applied. */
  settle(): Promise<void>;
  /** Stops like serve does on SIGTERM: drains, then closes the controller and the store. */
  shutdown(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface SetupOptions {
  /** A fake to reuse (e.g. across an agent restart); a new one otherwise. */
  fake?: FakeContainerd;
  /** KV file to reuse across restarts; in memory otherwise. */
  storePath?: string;
  /** Wait for the first session to connect. @default true */
  connected?: boolean;
  /** Options of the store (e.g. its commit hooks). */
  store?: KvStoreOptions;
  /** What the controller gets instead of the store (e.g. a wrapper counting reads). */
  wrapStore?: (store: SandboxStore) => SandboxStore;
}

export async function setup(
  options: Partial<ControllerOptions> = {},
  prepare?: (fake: FakeContainerd) => void,
  setupOptions: SetupOptions = {},
): Promise<Setup> {
  const fake = setupOptions.fake ?? new FakeContainerd(NS);
  prepare?.(fake);
  const store = await KvSandboxStore.open(setupOptions.storePath ?? ":memory:", setupOptions.store);
  const controller = new Controller(fake, setupOptions.wrapStore?.(store) ?? store, {
    namespace: NS,
    filters: FILTERS,
    reap: "never",
    resyncIntervalMs: 0,
    retryBackoff: { initialMs: 5, maxMs: 20 },
    reconnectBackoff: { initialMs: 5, maxMs: 20 },
    ...options,
  });
  const stop = new AbortController();
  const running = controller.run(stop.signal);
  if (setupOptions.connected ?? true) {
    assertEquals((await controller.firstOutcome()).state, "connected");
  }
  const settle = async () => {
    await new Promise((r) => setTimeout(r, 0));
    await controller.settled();
  };
  let closed = false;
  const shutdown = async () => {
    if (closed) return;
    closed = true;
    await controller.shutdown();
    stop.abort();
    await running;
    store.close();
  };
  return {
    fake,
    store,
    controller,
    settle,
    shutdown,
    async [Symbol.asyncDispose]() {
      if (!closed) {
        closed = true;
        controller.close();
        stop.abort();
        await running;
        store.close();
      }
      if (!setupOptions.fake) fake.close();
    },
  };
}
