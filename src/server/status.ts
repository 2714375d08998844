/**
 * The one place where errors become gRPC statuses for clients of the agent.
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import { codeOf, GrpcCode, StatusError } from "../errors.ts";
import { logger } from "../log.ts";

const log = logger("server");

/** A gRPC status for `err`; unexpected errors are logged and reported as INTERNAL. */
export function toServiceError(err: unknown, method: string): Partial<grpc.ServiceError> {
  if (err instanceof StatusError) return { code: err.code, details: err.message };
  log.error("{method} failed unexpectedly: {error}", {
    method,
    error: err instanceof Error ? err.stack ?? err.message : String(err),
  });
  return {
    code: codeOf(err) ?? GrpcCode.INTERNAL,
    details: `${method}: internal error: ${err instanceof Error ? err.message : String(err)}`,
  };
}
