/**
 * The containerd client layer: the `ContainerdClient` interface the controller depends
 * on, `SandboxRuntimeClient` (what running a pod sandbox needs), their gRPC
 * implementation, and event decoding.
 *
 * @module
 */
export type {
  AnyPayload,
  AnyValue,
  CallOptions,
  ContainerdClient,
  ContainerdEvent,
  ContainerInfo,
  ContainerRecord,
  DeletedTask,
  Descriptor,
  ImageRecord,
  Mount,
  NewContainer,
  ResourceCallOptions,
  SandboxRuntimeClient,
  TaskInfo,
  TaskStatus,
} from "./types.ts";
export { DEFAULT_CALL_TIMEOUT_MS, GrpcContainerdClient } from "./grpc_client.ts";
export type { GrpcContainerdClientOptions } from "./grpc_client.ts";
export { decodeEnvelope, MARKER_TOPIC, markerPayload, WATCHED_TOPICS } from "./events.ts";
export { andFilter, quoteFilterValue } from "./filters.ts";
