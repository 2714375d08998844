/**
 * Typed errors shared by every layer. Each class carries the gRPC status code it maps
 * to; the containerd client turns incoming gRPC failures into these classes
 * (`errorFromGrpc` in src/containerd/errors.ts) and the API server turns them back into
 * gRPC statuses in one place (src/server/status.ts).
 *
 * @module
 */

/** gRPC status codes (numbers are part of the gRPC wire protocol). */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = typeof GrpcCode[keyof typeof GrpcCode];

/** Base of the errors callers catch; `code` is the gRPC status it maps to. */
export abstract class StatusError extends Error {
  abstract readonly code: GrpcCode;
}

/** The named thing (sandbox, task, container) does not exist. */
export class NotFoundError extends StatusError {
  override name = "NotFoundError";
  readonly code = GrpcCode.NOT_FOUND;
}

/** A peer (containerd, the agent) cannot be reached or is shutting down. */
export class UnavailableError extends StatusError {
  override name = "UnavailableError";
  readonly code = GrpcCode.UNAVAILABLE;
}

/** A request carried a malformed value; the message names the rule. */
export class InvalidArgumentError extends StatusError {
  override name = "InvalidArgumentError";
  readonly code = GrpcCode.INVALID_ARGUMENT;
}

/** The operation is not possible in the current state (e.g. process already finished). */
export class FailedPreconditionError extends StatusError {
  override name = "FailedPreconditionError";
  readonly code = GrpcCode.FAILED_PRECONDITION;
}

/** A deadline passed before the operation completed. */
export class DeadlineExceededError extends StatusError {
  override name = "DeadlineExceededError";
  readonly code = GrpcCode.DEADLINE_EXCEEDED;
}

/** The caller cancelled the operation. */
export class CancelledError extends StatusError {
  override name = "CancelledError";
  readonly code = GrpcCode.CANCELLED;
}

/** The RPC exists in the API but podsandboxd does not implement it. */
export class UnimplementedError extends StatusError {
  override name = "UnimplementedError";
  readonly code = GrpcCode.UNIMPLEMENTED;
}

/** The named thing exists already (e.g. a sandbox created twice, differently). */
export class AlreadyExistsError extends StatusError {
  override name = "AlreadyExistsError";
  readonly code = GrpcCode.ALREADY_EXISTS;
}

/** A limit was reached (too many waiters, request too large). */
export class ResourceExhaustedError extends StatusError {
  override name = "ResourceExhaustedError";
  readonly code = GrpcCode.RESOURCE_EXHAUSTED;
}

/** Any other failure reported by a peer, kept with its original code. */
export class RemoteError extends StatusError {
  override name = "RemoteError";
  constructor(readonly code: GrpcCode, message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

const byCode: Partial<
  Record<GrpcCode, new (message: string, options?: ErrorOptions) => StatusError>
> = {
  [GrpcCode.NOT_FOUND]: NotFoundError,
  [GrpcCode.UNAVAILABLE]: UnavailableError,
  [GrpcCode.INVALID_ARGUMENT]: InvalidArgumentError,
  [GrpcCode.FAILED_PRECONDITION]: FailedPreconditionError,
  [GrpcCode.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [GrpcCode.CANCELLED]: CancelledError,
  [GrpcCode.UNIMPLEMENTED]: UnimplementedError,
  [GrpcCode.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [GrpcCode.ALREADY_EXISTS]: AlreadyExistsError,
};

/** Builds the typed error for a gRPC status code received from a peer. */
export function errorForCode(code: number, message: string, cause?: unknown): StatusError {
  const Class = byCode[code as GrpcCode];
  if (Class) return new Class(message, { cause });
  const known = Object.values(GrpcCode).includes(code as GrpcCode);
  return new RemoteError(known ? code as GrpcCode : GrpcCode.UNKNOWN, message, { cause });
}

/**
 * The error a call ended by `signal` rejects with: the abort reason when it is a typed
 * error (e.g. a DeadlineExceededError from a timeout), else a CancelledError naming `what`.
 */
export function abortError(signal: AbortSignal, what: string): StatusError {
  const reason = signal.reason;
  return reason instanceof StatusError
    ? reason
    : new CancelledError(`${what}: cancelled`, { cause: reason });
}

/** The gRPC code an error maps to: its own for StatusError, INTERNAL otherwise. */
export function codeOf(err: unknown): GrpcCode {
  return err instanceof StatusError ? err.code : GrpcCode.INTERNAL;
}

/** Name of a gRPC code for messages ("NOT_FOUND"). */
export function codeName(code: number): string {
  return Object.entries(GrpcCode).find(([, v]) => v === code)?.[0] ?? `code ${code}`;
}
