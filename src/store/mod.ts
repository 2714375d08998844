/**
 * The store layer: durable sandbox records (the only code that touches Deno KV).
 *
 * @module
 */
export type {
  ExitSource,
  ListFilter,
  PendingExit,
  PodMetadata,
  SandboxDescription,
  SandboxExit,
  SandboxKey,
  SandboxRecord,
  SandboxState,
  SandboxStore,
  StoreResult,
} from "./types.ts";
export { UNKNOWN_EXIT_STATUS } from "./types.ts";
export { KvSandboxStore, SCHEMA_VERSION, STATE_FILE } from "./kv_store.ts";
export { ObservedStore } from "./observed_store.ts";
