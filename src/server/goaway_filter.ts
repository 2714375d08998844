/**
 * Keeps a closing client's GOAWAY from reaching Deno 2.9.6's `node:http2` server, which
 * can abort the whole process on it (nghttp2 assertion in `find_stream_on_goaway_func`,
 * denoland/deno#36788). grpc-js and other Node/Deno clients send one whenever they close
 * a channel. The stream cap (connection_cap.ts) covers busy connections: there the
 * agent's own GOAWAY goes out first, after which the client's was measured harmless. It
 * does not cover connections closed before the cap: measured, a client making a few
 * Status calls and closing aborted the agent about once in seven test runs under load.
 *
 * Each accepted connection is handed to grpc-js through this filter: the client's bytes
 * pass unchanged except its GOAWAY frames, dropped until the agent has sent a GOAWAY of
 * its own on that connection (the cap's; the agent's shutdown's). A client's GOAWAY only
 * says it takes no server-initiated streams (the agent starts none) and is closing; the
 * socket's end that follows closes the session. The agent's bytes pass untouched.
 *
 * @module
 */
import type { Socket } from "node:net";
import { Duplex } from "node:stream";

/** HTTP/2 (RFC 9113): a client's connection preface, then frames with 9-byte headers. */
export const CLIENT_PREFACE_BYTES = 24;
const FRAME_HEADER_BYTES = 9;
export const GOAWAY = 0x07;

/**
 * Walks one direction of an HTTP/2 connection frame by frame, across chunk boundaries.
 * `keep(type)` is asked at each frame header: the frame is passed on, or dropped whole.
 */
export function frameFilter(
  prefaceBytes: number,
  keep: (type: number) => boolean,
): (chunk: Uint8Array) => Uint8Array[] {
  let preface = prefaceBytes;
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  let headerLength = 0;
  let payloadLeft = 0;
  let dropping = false;
  return (chunk) => {
    const out: Uint8Array[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (preface > 0) {
        const n = Math.min(preface, chunk.length - i);
        out.push(chunk.subarray(i, i + n));
        preface -= n;
        i += n;
      } else if (payloadLeft > 0) {
        const n = Math.min(payloadLeft, chunk.length - i);
        if (!dropping) out.push(chunk.subarray(i, i + n));
        payloadLeft -= n;
        i += n;
      } else {
        const n = Math.min(FRAME_HEADER_BYTES - headerLength, chunk.length - i);
        header.set(chunk.subarray(i, i + n), headerLength);
        headerLength += n;
        i += n;
        if (headerLength === FRAME_HEADER_BYTES) {
          headerLength = 0;
          payloadLeft = (header[0] << 16) | (header[1] << 8) | header[2];
          dropping = !keep(header[3]);
          if (!dropping) out.push(header.slice());
        }
      }
    }
    return out;
  };
}

/** `socket` as grpc-js's http2 server should see it (see the module's comment). */
export function withoutClientGoaway(socket: Socket): Duplex {
  let serverSentGoaway = false;
  const fromClient = frameFilter(
    CLIENT_PREFACE_BYTES,
    (type) => type !== GOAWAY || serverSentGoaway,
  );
  // The agent's side is only watched for its GOAWAY; its bytes go out as written.
  const toClient = frameFilter(0, (type) => {
    if (type === GOAWAY) serverSentGoaway = true;
    return false;
  });
  const filtered = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, _encoding, callback) {
      if (!serverSentGoaway) toClient(chunk); // once it is out, nothing more to watch for
      socket.write(chunk, callback);
    },
    final(callback) {
      socket.end();
      callback();
    },
    destroy(err, callback) {
      socket.destroy();
      callback(err);
    },
  });
  socket.on("data", (chunk: Uint8Array) => {
    for (const piece of fromClient(chunk)) if (!filtered.push(piece)) socket.pause();
  });
  socket.on("end", () => filtered.push(null));
  socket.on("close", () => filtered.destroy());
  socket.on("error", (err) => filtered.destroy(err));
  return filtered;
}
