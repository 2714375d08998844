/**
 * A workaround for a Deno 2.9 `node:http2` abort (denoland/deno#36788): when a client
 * closes a connection that carried 256 or more streams, nghttp2 asserts and the whole
 * agent dies — any client on the socket could kill it by making a few hundred calls on
 * one connection and hanging up. (Measured: 255 streams one after another never crashed,
 * 256 always did; streams open together need fewer: 64–85 concurrent calls on a fresh
 * connection survived its hang-up, 90–120 aborted the agent, SIGABRT or SIGSEGV.)
 *
 * After STREAMS_PER_CONNECTION streams on a connection, the server announces its
 * graceful end: a GOAWAY carrying the largest stream id, which refuses nothing in flight.
 * Clients open a new connection for later calls, and the old one closes with fewer
 * streams than the crash needs. A server-sent GOAWAY first also keeps the client's own
 * GOAWAY from reaching the failing path (measured: no abort in 10,000 calls this way).
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";

/**
 * Streams a connection may carry before the server asks the client to move on: below the
 * smallest fatal count measured (~90 concurrent streams).
 */
export const STREAMS_PER_CONNECTION = 64;

const LAST_STREAM_ID = 2 ** 31 - 1;
const NO_ERROR = 0;

/**
 * Clients the cap leaves alone: grpc-go's (containerd's sandbox proxy). Measured with
 * containerd 2.1.9: (a) its connection carried 400+ calls and was then closed — containerd
 * SIGTERMed and SIGKILLed — without the abort (grpc-go sends no GOAWAY of its own when it
 * closes, and the abort is reached through the peer's GOAWAY); (b) a GOAWAY from the
 * server while grpc-go had calls in flight on a connection with long-lived Waits lost a
 * call now and then (a CRI RunPodSandbox, StopPodSandbox or RemovePodSandbox waited out
 * its deadline; about 1 run in 3 with 20 pods run and removed in parallel under load), and
 * without the cap none did in 12 runs. The exemption goes by the user-agent a client sends,
 * so a client could claim it to escape the cap: the socket's mode (0660, its group) is the
 * boundary that matters there.
 */
const UNCAPPED_USER_AGENT = /^grpc-go\//;

interface Http2Session {
  on(
    event: "stream",
    listener: (stream: unknown, headers: Record<string, string | string[] | undefined>) => void,
  ): void;
  goaway(code: number, lastStreamId: number): void;
  readonly closed: boolean;
  readonly destroyed: boolean;
}

interface Http2ServerLike {
  on(event: "session", listener: (session: Http2Session) => void): void;
}

/** Whether the cap applies to a connection whose first request carries these headers. */
export function capsClient(headers: Record<string, string | string[] | undefined>): boolean {
  const agent = headers["user-agent"];
  return !(typeof agent === "string" && UNCAPPED_USER_AGENT.test(agent));
}

/**
 * Applies the cap to every listener of a bound grpc-js server. Returns false when
 * grpc-js's internals no longer look as expected (then nothing is changed).
 */
export function capStreamsPerConnection(
  server: grpc.Server,
  limit = STREAMS_PER_CONNECTION,
): boolean {
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map) || http2Servers.size === 0) return false;
  for (const http2Server of http2Servers.keys() as Iterable<Http2ServerLike>) {
    if (typeof http2Server?.on !== "function") return false;
    http2Server.on("session", (session) => {
      let streams = 0;
      let capped: boolean | undefined;
      session.on("stream", (_stream, headers) => {
        capped ??= capsClient(headers);
        if (capped && ++streams === limit && !session.closed && !session.destroyed) {
          session.goaway(NO_ERROR, LAST_STREAM_ID);
        }
      });
    });
  }
  return true;
}
