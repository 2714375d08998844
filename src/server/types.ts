/**
 * What the API server needs from the rest of the agent (implemented by Controller).
 *
 * @module
 */
import type { Change } from "../controller/changes.ts";
import type { ConnectionStatus, ExitedRecord } from "../controller/controller.ts";
import type { Platform } from "../platform.ts";
import type { ListFilter, SandboxKey, SandboxRecord } from "../store/types.ts";

export interface SandboxService {
  /** The namespace used when a request names none. */
  readonly namespace: string;
  readonly status: ConnectionStatus;
  get(key: SandboxKey): Promise<SandboxRecord>;
  list(filter?: ListFilter): Promise<SandboxRecord[]>;
  wait(key: SandboxKey, options?: { signal?: AbortSignal }): Promise<ExitedRecord>;
  platform(): Platform;
  watch(
    options: { namespace: string; snapshot?: boolean; signal?: AbortSignal },
  ): AsyncIterable<Change & { snapshot: boolean }>;
  onStatusChange(listener: (status: ConnectionStatus) => void): () => void;
}
