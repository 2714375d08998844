/**
 * A ttrpc client: unary calls, many at once, on one connection (a unix socket). Each
 * call has its own stream id (odd, increasing), an optional deadline (sent as
 * `timeout_nano` and enforced here too, since a handler may ignore it) and an
 * AbortSignal. Failures are typed errors from src/errors.ts: a peer's status code through
 * `errorForCode`, a lost connection as UnavailableError for every pending call, an abort
 * as CancelledError, and a closed client as CancelledError.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import {
  abortError,
  CancelledError,
  DeadlineExceededError,
  errorForCode,
  GrpcCode,
  ResourceExhaustedError,
  StatusError,
  UnavailableError,
} from "../errors.ts";
import { Request, Response } from "../gen/ttrpc/ttrpc.ts";
import {
  encodeFrame,
  type Frame,
  FrameDecoder,
  FrameError,
  FrameType,
  MAX_MESSAGE_LENGTH,
} from "./frame.ts";

/** The part of a Deno.Conn the client uses (tests may pass their own). */
export interface TtrpcConnection {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** A generated message type (ts-proto's MessageFns): encodes and decodes one message. */
export interface MessageCodec<T> {
  encode(message: T): { finish(): Uint8Array };
  decode(bytes: Uint8Array): T;
}

export interface TtrpcCallOptions {
  /** Ends the call: it rejects with CancelledError (or the signal's reason if typed). */
  signal?: AbortSignal;
  /** Deadline in milliseconds from now; the call rejects with DeadlineExceededError. */
  timeoutMs?: number;
  /** ttrpc metadata (key/value pairs the server's handlers may read). */
  metadata?: Record<string, string>;
  /** Names the call in error messages; default "ttrpc SERVICE/METHOD on PEER". */
  what?: string;
}

export interface TtrpcClientOptions {
  /** Names the peer in error messages (the socket path). */
  peer: string;
}

interface Pending {
  what: string;
  resolve(payload: Uint8Array): void;
  reject(err: StatusError): void;
}

/** Per connection, and an agent holds one per shim: shim messages are tens of bytes. */
const READ_BUFFER = 8 * 1024;
const MAX_STREAM_ID = 0xffffffff;

export class TtrpcClient implements AsyncDisposable {
  readonly peer: string;
  /** Resolves (never rejects) once the connection is over, with why: UnavailableError
   * when the peer went away or broke the protocol, CancelledError after close(). */
  readonly closed: Promise<StatusError>;
  readonly #conn: TtrpcConnection;
  readonly #pending = new Map<number, Pending>();
  #nextStreamId = 1;
  #writeChain: Promise<void> = Promise.resolve();
  #reason?: StatusError;
  /** Why the connection ended, without the peer (call errors name it in `what`). */
  #why = "";
  #markClosed!: (reason: StatusError) => void;
  readonly #reading: Promise<void>;

  constructor(conn: TtrpcConnection, options: TtrpcClientOptions) {
    this.#conn = conn;
    this.peer = options.peer;
    this.closed = new Promise((resolve) => this.#markClosed = resolve);
    this.#reading = this.#readLoop();
  }

  /**
   * Connects to the ttrpc server on the unix socket at `path`. A missing socket or one
   * nobody listens on rejects with UnavailableError; a missing Deno permission is
   * rethrown as Deno reports it (the message names the flag).
   */
  static async connect(
    path: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<TtrpcClient> {
    const what = `connect to ttrpc socket ${path}`;
    if (options.signal?.aborted) throw abortError(options.signal, what);
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path });
    } catch (err) {
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
        throw err;
      }
      const why = err instanceof Deno.errors.NotFound
        ? "no such socket"
        : err instanceof Deno.errors.ConnectionRefused
        ? "connection refused (nothing listens on it)"
        : (err as Error).message;
      throw new UnavailableError(`cannot ${what}: ${why}`, { cause: err });
    }
    if (options.signal?.aborted) {
      conn.close();
      throw abortError(options.signal, what);
    }
    return new TtrpcClient(conn, { peer: path });
  }

  /** Calls currently waiting for their response. */
  get pending(): number {
    return this.#pending.size;
  }

  /** Makes a unary call with an encoded request; resolves with the encoded response. */
  call(
    service: string,
    method: string,
    payload: Uint8Array,
    options: TtrpcCallOptions = {},
  ): Promise<Uint8Array> {
    const what = options.what ?? `ttrpc ${service}/${method} on ${this.peer}`;
    const { signal, timeoutMs } = options;
    if (this.#reason) return Promise.reject(this.#closedError(what));
    if (signal?.aborted) return Promise.reject(abortError(signal, what));
    if (timeoutMs !== undefined && !(timeoutMs > 0)) {
      return Promise.reject(new RangeError(`${what}: timeoutMs must be > 0, got ${timeoutMs}`));
    }
    const request = Request.encode({
      service,
      method,
      payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      timeoutNano: timeoutMs === undefined ? 0 : Math.round(timeoutMs * 1e6),
      metadata: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
    }).finish();
    if (request.length > MAX_MESSAGE_LENGTH) {
      return Promise.reject(
        new ResourceExhaustedError(
          `${what}: request of ${request.length} bytes is above ttrpc's limit of ${MAX_MESSAGE_LENGTH}`,
        ),
      );
    }
    if (this.#nextStreamId > MAX_STREAM_ID) {
      // Stream ids must increase; after 2^31 calls the connection cannot carry more.
      this.#shutdown(UnavailableError, "stream ids used up, reconnect");
      return Promise.reject(this.#closedError(what));
    }
    const streamId = this.#nextStreamId;
    this.#nextStreamId += 2;

    return new Promise<Uint8Array>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () => settle(undefined, abortError(signal!, what));
      const settle = (payload?: Uint8Array, err?: StatusError) => {
        if (!this.#pending.delete(streamId)) return;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve(payload!);
      };
      // Settling removes the call: a late response to it is then ignored.
      this.#pending.set(streamId, {
        what,
        resolve: (p) => settle(p),
        reject: (e) => settle(undefined, e),
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () =>
            settle(
              undefined,
              new DeadlineExceededError(`${what}: no answer within ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
      }
      this.#send(encodeFrame({ streamId, type: FrameType.REQUEST, flags: 0, payload: request }));
    });
  }

  /** Makes a unary call with generated message types. */
  async unary<Req, Res>(
    service: string,
    method: string,
    requestType: MessageCodec<Req>,
    responseType: MessageCodec<Res>,
    request: Req,
    options: TtrpcCallOptions = {},
  ): Promise<Res> {
    const what = options.what ?? `ttrpc ${service}/${method} on ${this.peer}`;
    const bytes = await this.call(service, method, requestType.encode(request).finish(), {
      ...options,
      what,
    });
    try {
      return responseType.decode(bytes);
    } catch (err) {
      throw errorForCode(
        GrpcCode.INTERNAL,
        `${what}: undecodable response: ${(err as Error).message}`,
        err,
      );
    }
  }

  /** Closes the connection; pending calls reject with CancelledError. Idempotent. */
  close(): void {
    this.#shutdown(CancelledError, "client closed");
  }

  /** Closes and waits until the connection's reader has stopped. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
    await this.#reading;
  }

  #send(bytes: Uint8Array): void {
    // One frame at a time: frames of concurrent calls must not interleave.
    this.#writeChain = this.#writeChain.then(async () => {
      if (this.#reason) return;
      try {
        for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
      } catch (err) {
        this.#shutdown(UnavailableError, `write failed: ${(err as Error).message}`, err);
      }
    });
  }

  async #readLoop(): Promise<void> {
    const decoder = new FrameDecoder({ maxPayload: MAX_MESSAGE_LENGTH });
    const buf = new Uint8Array(READ_BUFFER);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) {
          decoder.end();
          this.#shutdown(UnavailableError, "connection closed by the peer");
          return;
        }
        for (const frame of decoder.push(buf.subarray(0, n))) this.#onFrame(frame);
      }
    } catch (err) {
      // After close() the read fails because we closed: the first reason stands.
      const why = err instanceof FrameError
        ? `protocol error: ${err.message}`
        : `connection failed: ${(err as Error).message}`;
      this.#shutdown(UnavailableError, why, err);
    }
  }

  #onFrame(frame: Frame): void {
    const call = this.#pending.get(frame.streamId);
    // A frame for no pending call: an answer to a call that was aborted or timed out.
    if (!call) return;
    if (frame.type !== FrameType.RESPONSE) {
      const kind = frame.type === FrameType.DATA ? "data" : `type-${frame.type}`;
      call.reject(
        errorForCode(GrpcCode.INTERNAL, `${call.what}: unexpected ${kind} frame for a unary call`),
      );
      return;
    }
    let response: Response;
    try {
      response = Response.decode(frame.payload);
    } catch (err) {
      call.reject(
        errorForCode(
          GrpcCode.INTERNAL,
          `${call.what}: undecodable ttrpc response: ${(err as Error).message}`,
          err,
        ),
      );
      return;
    }
    const status = response.status;
    if (status && status.code !== GrpcCode.OK) {
      call.reject(errorForCode(status.code, `${call.what}: ${status.message}`, status));
    } else call.resolve(response.payload);
  }

  /** Ends the connection once, rejecting every pending call. */
  #shutdown(
    Class: typeof UnavailableError | typeof CancelledError,
    why: string,
    cause?: unknown,
  ): void {
    if (this.#reason) return;
    const reason = new Class(`ttrpc connection to ${this.peer}: ${why}`, { cause });
    this.#reason = reason;
    this.#why = why;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
    const calls = [...this.#pending.values()];
    for (const call of calls) call.reject(this.#closedError(call.what));
    this.#markClosed(reason);
  }

  /** A fresh error of the closing reason's kind, naming `what`. */
  #closedError(what: string): StatusError {
    const reason = this.#reason!;
    const Class = reason instanceof CancelledError ? CancelledError : UnavailableError;
    return new Class(`${what}: ${this.#why}`, { cause: reason });
  }
}
