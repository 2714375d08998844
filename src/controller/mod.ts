/**
 * The controller layer: follows containerd and keeps the sandbox records.
 *
 * @module
 */
export {
  Controller,
  DEFAULT_MARKER_GIVE_UP_MS,
  DEFAULT_MARKER_TIMEOUT_MS,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_RESYNC_INTERVAL_MS,
  DEFAULT_SHUTDOWN_DRAIN_MS,
  EVENT_SOURCES,
  REAP_POLICIES,
} from "./controller.ts";
export type {
  ConnectionState,
  ConnectionStatus,
  ControllerOptions,
  EventSource,
  ExitedRecord,
  ReapPolicy,
} from "./controller.ts";
export { EXIT_RETRY_BACKOFF, RECONNECT_BACKOFF } from "./backoff.ts";
export type { BackoffOptions } from "./backoff.ts";
