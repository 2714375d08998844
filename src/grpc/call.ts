/**
 * Promise/async-iterator wrappers over grpc-js calls made with the method definitions
 * ts-proto generates. Every failure leaves here as a typed error from src/errors.ts
 * whose message names what was being done, with the grpc-js error as `cause`.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { abortError, errorForCode, GrpcCode, StatusError } from "../errors.ts";

/** A generated method definition (unary or server-streaming). */
export interface MethodDefinition<Req, Res> {
  path: string;
  requestSerialize: (value: Req) => Buffer;
  responseDeserialize: (value: Buffer) => Res;
}

export interface GrpcCallOptions {
  /** Names the operation in error messages ("containerd tasks.Get k8s.io/abc"). */
  what: string;
  metadata?: Record<string, string>;
  /** Per-call deadline in milliseconds from now; none when omitted. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Queue the call until the channel connects instead of failing UNAVAILABLE at once. */
  waitForReady?: boolean;
}

function metadataOf(options: GrpcCallOptions): grpc.Metadata {
  const entries = options.metadata;
  // grpc-js takes wait-for-ready as a metadata option, not a call option.
  const md = new grpc.Metadata(options.waitForReady ? { waitForReady: true } : undefined);
  for (const [k, v] of Object.entries(entries ?? {})) md.set(k, v);
  return md;
}

function callOptions(options: GrpcCallOptions): grpc.CallOptions {
  return options.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
}

/** Converts a grpc-js error (or anything thrown) into a typed error naming `what`. */
export function toStatusError(err: unknown, what: string): StatusError {
  const e = err as Partial<grpc.ServiceError>;
  if (typeof e?.code === "number") {
    // grpc-js appends an empty "Resolution note: " to connection errors.
    const details = (e.details || e.message || "").replace(/\.? ?Resolution note: ?$/, "");
    return errorForCode(e.code, `${what}: ${details}`, err);
  }
  return errorForCode(
    GrpcCode.UNKNOWN,
    `${what}: ${err instanceof Error ? err.message : String(err)}`,
    err,
  );
}

/** Makes a unary call; rejects with a typed error. */
export function unaryCall<Req, Res>(
  client: grpc.Client,
  method: MethodDefinition<Req, Res>,
  request: Req,
  options: GrpcCallOptions,
): Promise<Res> {
  const { signal, what } = options;
  if (signal?.aborted) return Promise.reject(abortError(signal, what));
  return new Promise<Res>((resolve, reject) => {
    const onAbort = () => call.cancel();
    const call = client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      metadataOf(options),
      callOptions(options),
      (err, res) => {
        signal?.removeEventListener("abort", onAbort);
        if (err) {
          reject(signal?.aborted ? abortError(signal, what) : toStatusError(err, what));
        } else resolve(res as Res);
      },
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Makes a server-streaming call; the iterator throws a typed error when the stream fails. */
export async function* serverStreamCall<Req, Res>(
  client: grpc.Client,
  method: MethodDefinition<Req, Res>,
  request: Req,
  options: GrpcCallOptions,
): AsyncGenerator<Res, void, undefined> {
  const { signal, what } = options;
  if (signal?.aborted) throw abortError(signal, what);
  const call = client.makeServerStreamRequest(
    method.path,
    method.requestSerialize,
    method.responseDeserialize,
    request,
    metadataOf(options),
    callOptions(options),
  );
  const onAbort = () => call.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for await (const message of call) yield message as Res;
  } catch (err) {
    throw signal?.aborted ? abortError(signal, what) : toStatusError(err, what);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    // Leaving the loop early (break, return, throw) must end the call on the wire too.
    call.cancel();
  }
}

/** Normalises a socket path or URI to a grpc-js target ("unix:///run/x.sock"). */
export function grpcTarget(address: string): string {
  if (address.startsWith("unix:")) return address;
  if (address.startsWith("/")) return `unix://${address}`;
  throw new RangeError(
    `invalid address ${JSON.stringify(address)}: expected an absolute socket path or unix:///path`,
  );
}
