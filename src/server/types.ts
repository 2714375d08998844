/**
 * What the API server needs from the rest of the agent (implemented by Controller).
 *
 * @module
 */
import type { Change } from "../controller/changes.ts";
import type {
  ConnectionStatus,
  CreateRequest,
  ExitedRecord,
  StartedSandbox,
} from "../controller/controller.ts";
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
  // The lifecycle of the sandboxes the agent owns as a sandbox controller; each call
  // names the sandboxer it is for.
  createSandbox(sandboxer: string, request: CreateRequest): Promise<unknown>;
  startSandbox(
    sandboxer: string,
    key: SandboxKey,
    options?: { signal?: AbortSignal },
  ): Promise<StartedSandbox>;
  stopSandbox(
    sandboxer: string,
    key: SandboxKey,
    options?: { timeoutSecs?: number; signal?: AbortSignal },
  ): Promise<void>;
  shutdownSandbox(
    sandboxer: string,
    key: SandboxKey,
    options?: { signal?: AbortSignal },
  ): Promise<void>;
}
