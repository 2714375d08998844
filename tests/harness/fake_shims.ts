/**
 * Shims for the scripted fake containerd: a ShimLocator and ShimDialer whose Wait
 * answers when the fake's init process exits — also while the fake containerd is down,
 * as a real shim does — and shims that can be killed on cue.
 *
 * @module
 */
import { NotFoundError, UnavailableError } from "../../src/errors.ts";
import type {
  ShimClient,
  ShimDialer,
  ShimEndpoint,
  ShimExit,
  ShimLocator,
} from "../../src/shim/mod.ts";
import type { FakeContainerd } from "./fake_containerd.ts";

export class FakeShims implements ShimLocator {
  readonly #fake: FakeContainerd;
  readonly #dead = new Set<string>();
  readonly #clients = new Set<FakeShimClient>();

  constructor(fake: FakeContainerd) {
    this.#fake = fake;
    fake.exitListeners.add((id, status, exitedAt) => {
      for (const c of this.#clients) c.exited(id, { exitStatus: status, exitedAt });
    });
  }

  /** Connections open now. */
  get open(): number {
    return this.#clients.size;
  }

  locate(namespace: string, id: string): Promise<ShimEndpoint> {
    if (!this.#fake.tasks.has(id) || this.#dead.has(id)) {
      return Promise.reject(new NotFoundError(`fake shim: no shim files for ${namespace}/${id}`));
    }
    return Promise.resolve({
      namespace,
      id,
      socket: `/fake/s/${id}`,
      api: 2,
      service: "containerd.task.v2.Task",
      source: "fake",
    });
  }

  list(): Promise<string[]> {
    return Promise.resolve([...this.#fake.tasks.keys()].filter((id) => !this.#dead.has(id)).sort());
  }

  readonly dial: ShimDialer = (endpoint) => {
    if (this.#dead.has(endpoint.id)) {
      return Promise.reject(new UnavailableError(`fake shim ${endpoint.socket}: refused`));
    }
    const client = new FakeShimClient(endpoint, this.#fake, () => this.#clients.delete(client));
    this.#clients.add(client);
    return Promise.resolve(client);
  };

  /** The shim of `id` is SIGKILLed: its calls fail, its files point nowhere. */
  kill(id: string): void {
    this.#dead.add(id);
    for (const c of [...this.#clients]) {
      if (c.endpoint.id === id) {
        c.fail(new UnavailableError(`fake shim of ${id}: connection reset`));
      }
    }
  }
}

class FakeShimClient implements ShimClient {
  readonly #fake: FakeContainerd;
  readonly #waits = new Map<string, Array<PromiseWithResolvers<ShimExit>>>();
  readonly #closed = Promise.withResolvers<UnavailableError>();
  readonly #onClose: () => void;
  readonly closed: Promise<UnavailableError>;

  constructor(readonly endpoint: ShimEndpoint, fake: FakeContainerd, onClose: () => void) {
    this.#fake = fake;
    this.#onClose = onClose;
    this.closed = this.#closed.promise;
  }

  wait(id: string): Promise<ShimExit> {
    const task = this.#fake.tasks.get(id);
    if (!task) return Promise.reject(new NotFoundError(`fake shim: no task ${id}`));
    if (task.status === "stopped") {
      return Promise.resolve({ exitStatus: task.exitStatus, exitedAt: task.exitedAt });
    }
    const pending = Promise.withResolvers<ShimExit>();
    const list = this.#waits.get(id) ?? [];
    list.push(pending);
    this.#waits.set(id, list);
    return pending.promise;
  }

  state(): Promise<never> {
    return Promise.reject(new Error("fake shim: State is not scripted"));
  }

  exited(id: string, exit: ShimExit): void {
    for (const p of this.#waits.get(id) ?? []) p.resolve(exit);
    this.#waits.delete(id);
  }

  fail(err: UnavailableError): void {
    for (const list of this.#waits.values()) for (const p of list) p.reject(err);
    this.#waits.clear();
    this.#closed.resolve(err);
    this.#onClose();
  }

  close(): void {
    this.fail(new UnavailableError("fake shim: closed"));
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
