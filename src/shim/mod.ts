/**
 * The shim adapter: finds a task's shim in containerd's state directory and reads its
 * task's state and exit over ttrpc, also while containerd itself is down. Read-only.
 *
 * @module
 */
export type {
  ShimCallOptions,
  ShimClient,
  ShimDialer,
  ShimEndpoint,
  ShimExit,
  ShimLocator,
  ShimState,
  ShimTaskApi,
} from "./types.ts";
export { StateDirShimLocator, TASK_BUNDLES_DIR, TASK_SERVICES } from "./locator.ts";
export { dialShim, TtrpcShimClient } from "./task_client.ts";
