/**
 * A SandboxStore that reports every committed change to a listener (the Watch feed),
 * so no writer has to remember to.
 *
 * @module
 */
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

export class ObservedStore implements SandboxStore {
  constructor(
    readonly inner: SandboxStore,
    readonly onChange: (record: SandboxRecord, removed: boolean) => void,
  ) {}

  #report<R extends StoreResult | null>(result: R): R {
    if (result?.changed) this.onChange(result.record, false);
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

  async expireRemoved(before: string): Promise<SandboxRecord[]> {
    const expired = await this.inner.expireRemoved(before);
    for (const record of expired) this.onChange(record, true);
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
