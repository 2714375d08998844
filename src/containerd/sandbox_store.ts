/**
 * Which sandbox controller ("sandboxer") owns a container, from containerd's sandbox
 * store (`containerd.services.sandbox.v1.Store`). What differs by version:
 * - 1.6 has no sandbox API: the Store answers UNIMPLEMENTED. Nothing is asked again until
 *   the next session (a restarted containerd may be another version).
 * - 1.7 has the Store, but its CRI does not use it by default: CRI pods are not in it.
 * - 2.x's CRI keeps every pod there, owned by "podsandbox" (its built-in controller) or
 *   by the external controller its runtime handler names.
 * Nothing depends on the answer: a failing store never fails the listing it decorates.
 *
 * @module
 */
import { CancelledError, NotFoundError, UnimplementedError } from "../errors.ts";
import { logger } from "../log.ts";

const log = logger("containerd");

/** Up to this many containers are looked up one by one (Get); more take one List. */
export const STORE_GET_LIMIT = 4;

/** The two Store calls, in sandboxer terms. */
export interface SandboxStoreCalls {
  /** The sandboxer of `id`; rejects with NotFoundError when the store does not hold it. */
  get(id: string): Promise<string>;
  /** Every sandbox of the namespace: id → sandboxer. */
  list(): Promise<Map<string, string>>;
}

/** Looks up the sandboxers of `ids` (absent: not in the store, or no sandboxer named). */
export async function lookUpSandboxers(
  ids: readonly string[],
  calls: SandboxStoreCalls,
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (ids.length === 0) return out;
  if (ids.length <= STORE_GET_LIMIT) {
    await Promise.all(ids.map(async (id) => {
      try {
        const sandboxer = await calls.get(id);
        if (sandboxer) out.set(id, sandboxer);
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
      }
    }));
    return out;
  }
  const all = await calls.list();
  for (const id of ids) {
    const sandboxer = all.get(id);
    if (sandboxer) out.set(id, sandboxer);
  }
  return out;
}

/** Remembers that containerd has no sandbox store, so 1.6 is asked once per session. */
export class SandboxStoreProbe {
  #absent = false;
  #warned = false;

  /** containerd may have been replaced (another version): ask the store again. */
  reset(): void {
    this.#absent = false;
    this.#warned = false;
  }

  /** The sandboxers of `ids`; empty when containerd has no store or it failed. */
  async sandboxers(
    ids: readonly string[],
    calls: SandboxStoreCalls,
  ): Promise<Map<string, string>> {
    if (this.#absent || ids.length === 0) return new Map();
    try {
      return await lookUpSandboxers(ids, calls);
    } catch (err) {
      if (err instanceof CancelledError) throw err; // the listing itself was cancelled
      if (err instanceof UnimplementedError) {
        this.#absent = true;
        log.debug("containerd has no sandbox store (before 1.7): no sandboxer is shown");
      } else if (!this.#warned) {
        // Once: the sandboxer is information, not something the agent needs.
        this.#warned = true;
        log.warn("could not read containerd's sandbox store: {error}", { error: String(err) });
      }
      return new Map();
    }
  }
}
