/**
 * A small ttrpc server for tests: unary handlers keyed "service/method", answered on a
 * unix socket like a shim answers, plus hooks to misbehave on cue (raw bytes, no answer,
 * dropped connections). It records every request it decoded.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { GrpcCode } from "../../src/errors.ts";
import { Request, Response } from "../../src/gen/ttrpc/ttrpc.ts";
import { encodeFrame, FrameDecoder, FrameType } from "../../src/ttrpc/frame.ts";

export interface ReceivedRequest {
  streamId: number;
  service: string;
  method: string;
  payload: Uint8Array;
  timeoutNano: number;
  metadata: Record<string, string>;
  connection: ServerConnection;
}

/** What a handler answers: a payload, an error status, or nothing at all (never replies). */
export type HandlerResult =
  | { payload: Uint8Array }
  | { status: { code: number; message: string } }
  | "no-reply";

export type Handler = (request: ReceivedRequest) => HandlerResult | Promise<HandlerResult>;

export class ServerConnection {
  readonly #conn: Deno.Conn;
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Writes bytes as they are (for malformed frames). */
  async writeRaw(bytes: Uint8Array): Promise<void> {
    if (this.#closed) return;
    for (let off = 0; off < bytes.length;) off += await this.#conn.write(bytes.subarray(off));
  }

  /** Writes one response frame carrying `response`. */
  respond(streamId: number, response: Response): Promise<void> {
    const payload = Response.encode(response).finish();
    return this.writeRaw(encodeFrame({ streamId, type: FrameType.RESPONSE, flags: 0, payload }));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

export class TestTtrpcServer {
  readonly path: string;
  readonly requests: ReceivedRequest[] = [];
  readonly connections = new Set<ServerConnection>();
  readonly #listener: Deno.Listener;
  readonly #handlers: Map<string, Handler>;
  readonly #serving: Promise<void>;
  readonly #tasks = new Set<Promise<void>>();

  private constructor(path: string, handlers: Record<string, Handler>) {
    this.path = path;
    this.#handlers = new Map(Object.entries(handlers));
    this.#listener = Deno.listen({ transport: "unix", path });
    this.#serving = this.#accept();
  }

  static start(path: string, handlers: Record<string, Handler>): TestTtrpcServer {
    return new TestTtrpcServer(path, handlers);
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const c of this.connections) c.close();
    await this.#serving;
    await Promise.allSettled([...this.#tasks]);
    await Deno.remove(this.path).catch(() => {});
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const sc = new ServerConnection(conn);
        this.connections.add(sc);
        this.#track(this.#serve(conn, sc));
      }
    } catch {
      // Listener closed.
    }
  }

  /** Keeps `task` until it ends; its failure is the connection's problem, not the test's. */
  #track(task: Promise<void>): void {
    const settled = task.catch(() => {});
    this.#tasks.add(settled);
    settled.then(() => this.#tasks.delete(settled));
  }

  async #serve(conn: Deno.Conn, sc: ServerConnection): Promise<void> {
    const decoder = new FrameDecoder();
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        for (const frame of decoder.push(buf.subarray(0, n))) {
          if (frame.type !== FrameType.REQUEST) continue;
          const req = Request.decode(frame.payload);
          const received: ReceivedRequest = {
            streamId: frame.streamId,
            service: req.service,
            method: req.method,
            payload: Uint8Array.from(req.payload),
            timeoutNano: req.timeoutNano,
            metadata: Object.fromEntries(req.metadata.map((kv) => [kv.key, kv.value])),
            connection: sc,
          };
          this.requests.push(received);
          // Not tracked: a handler may never return (a Wait nobody answers).
          this.#answer(received).catch(() => {});
        }
      }
    } catch {
      // Connection dropped or garbled: the test decides what that means.
    } finally {
      sc.close();
      this.connections.delete(sc);
    }
  }

  async #answer(req: ReceivedRequest): Promise<void> {
    const handler = this.#handlers.get(`${req.service}/${req.method}`);
    const result: HandlerResult = handler
      ? await handler(req)
      : { status: { code: GrpcCode.UNIMPLEMENTED, message: `method ${req.method}` } };
    if (result === "no-reply") return;
    const response: Response = "payload" in result
      ? { status: undefined, payload: Buffer.from(result.payload) }
      : { status: result.status, payload: Buffer.alloc(0) };
    await req.connection.respond(req.streamId, response);
  }
}
