/**
 * A SandboxStore that reports every committed change to a listener (the Watch feed),
 * so no writer has to remember to.
 *
 * @module
 */
import type { OwnedSandboxStore } from "./owned.ts";
import type {
  ListFilter,
  PendingExit,
  SandboxDescription,
  SandboxExit,
  SandboxKey,
  SandboxRecord,
  SandboxStore,
  StoreResult,
} from "./types.ts";

/**
 * A committed change: a record written, or gone from the store — expired after
 * retention, or replaced by the record of a newer container with the same id (reported
 * before the new record).
 */
export interface StoreChange {
  record: SandboxRecord;
  removed?: "expired" | "replaced";
}

export class ObservedStore implements SandboxStore {
  constructor(
    readonly inner: SandboxStore,
    readonly onChange: (change: StoreChange) => void,
  ) {}

  get owned(): OwnedSandboxStore {
    return this.inner.owned;
  }

  #report<R extends StoreResult | null>(result: R): R {
    if (result?.replaced) this.onChange({ record: result.replaced, removed: "replaced" });
    if (result?.changed) this.onChange({ record: result.record });
    return result;
  }

  get(key: SandboxKey): Promise<SandboxRecord | null> {
    return this.inner.get(key);
  }

  list(filter?: ListFilter): Promise<SandboxRecord[]> {
    return this.inner.list(filter);
  }

  async discover(key: SandboxKey, description: SandboxDescription): Promise<StoreResult> {
    return this.#report(await this.inner.discover(key, description));
  }

  async markRunning(
    key: SandboxKey,
    pid: number,
    description?: SandboxDescription,
  ): Promise<StoreResult> {
    return this.#report(await this.inner.markRunning(key, pid, description));
  }

  async recordExit(
    key: SandboxKey,
    exit: Omit<SandboxExit, "recordedAt">,
    description?: SandboxDescription,
  ): Promise<StoreResult> {
    return this.#report(await this.inner.recordExit(key, exit, description));
  }

  async markDeleted(key: SandboxKey, at: string): Promise<StoreResult | null> {
    return this.#report(await this.inner.markDeleted(key, at));
  }

  async expireRemoved(before: string, followed: string): Promise<SandboxRecord[]> {
    const expired = await this.inner.expireRemoved(before, followed);
    for (const record of expired) this.onChange({ record, removed: "expired" });
    return expired;
  }

  savePendingExit(
    key: SandboxKey,
    exit: Omit<SandboxExit, "recordedAt">,
    description?: SandboxDescription,
  ): Promise<void> {
    return this.inner.savePendingExit(key, exit, description);
  }

  notePendingFailure(key: SandboxKey, error: string): Promise<void> {
    return this.inner.notePendingFailure(key, error);
  }

  listPendingExits(filter?: { namespace?: string }): Promise<PendingExit[]> {
    return this.inner.listPendingExits(filter);
  }

  close(): void {
    this.inner.close();
  }
}
