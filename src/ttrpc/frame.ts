/**
 * ttrpc framing: every message is a 10-byte header (payload length uint32 BE, stream id
 * uint32 BE, type byte, flags byte) followed by the payload. `FrameDecoder` turns a byte
 * stream into frames incrementally, holding at most one partial frame; it never
 * allocates on a peer's say-so (a header claiming 4 MiB costs nothing until the bytes
 * arrive) and refuses payloads above ttrpc's 4 MiB limit.
 *
 * @module
 */

export const HEADER_LENGTH = 10;
/** ttrpc's maximum payload of one message (4 MiB), in both directions. */
export const MAX_MESSAGE_LENGTH = 4 << 20;

/** Frame types. Others may appear on the wire; the decoder passes them through. */
export const FrameType = {
  REQUEST: 1,
  RESPONSE: 2,
  DATA: 3,
} as const;

/** Request flags; a unary request carries none. */
export const FrameFlags = {
  REMOTE_CLOSED: 0x1,
  REMOTE_OPEN: 0x2,
  NO_DATA: 0x4,
} as const;

export interface Frame {
  streamId: number;
  type: number;
  flags: number;
  payload: Uint8Array;
}

/** The byte stream is not valid ttrpc framing; the connection cannot be trusted after it. */
export class FrameError extends Error {
  override name = "FrameError";
}

/** One frame as bytes. Throws RangeError for a payload above the limit or a bad header field. */
export function encodeFrame(
  frame: Frame,
  maxPayload: number = MAX_MESSAGE_LENGTH,
): Uint8Array {
  const { streamId, type, flags, payload } = frame;
  if (payload.length > maxPayload) {
    throw new RangeError(
      `ttrpc message of ${payload.length} bytes is above the limit of ${maxPayload} bytes`,
    );
  }
  if (!Number.isInteger(streamId) || streamId < 0 || streamId > 0xffffffff) {
    throw new RangeError(`ttrpc stream id ${streamId} is not a uint32`);
  }
  for (const [what, v] of [["type", type], ["flags", flags]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xff) {
      throw new RangeError(`ttrpc frame ${what} ${v} is not a byte`);
    }
  }
  const out = new Uint8Array(HEADER_LENGTH + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  view.setUint32(4, streamId);
  out[8] = type;
  out[9] = flags;
  out.set(payload, HEADER_LENGTH);
  return out;
}

/**
 * Incremental decoder. `push` each chunk read from the connection (the decoder copies
 * what it keeps, so the caller may reuse its buffer) and handle the frames it returns;
 * `end` at end of stream. After a FrameError every further call throws it again.
 */
export class FrameDecoder {
  readonly #maxPayload: number;
  readonly #header = new Uint8Array(HEADER_LENGTH);
  #headerFill = 0;
  /** Parsed header of the frame being read, once all 10 bytes are in. */
  #current?: { length: number; streamId: number; type: number; flags: number };
  /** Payload bytes so far; grows by doubling as bytes arrive, never past the frame's length. */
  #payload = new Uint8Array(0);
  #payloadFill = 0;
  #error?: FrameError;

  constructor(options: { maxPayload?: number } = {}) {
    this.#maxPayload = options.maxPayload ?? MAX_MESSAGE_LENGTH;
  }

  /** Bytes allocated for the partial frame: at most 10 + the payload limit, and at most
   * twice what has arrived (or 4 KiB). */
  get buffered(): number {
    return this.#headerFill + this.#payload.length;
  }

  /** Consumes `chunk`; returns every frame it completed, in order. Throws FrameError. */
  push(chunk: Uint8Array): Frame[] {
    if (this.#error) throw this.#error;
    const frames: Frame[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (!this.#current) {
        const n = Math.min(HEADER_LENGTH - this.#headerFill, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + n), this.#headerFill);
        this.#headerFill += n;
        at += n;
        if (this.#headerFill < HEADER_LENGTH) break;
        this.#startFrame();
      } else {
        const want = this.#current.length - this.#payloadFill;
        const n = Math.min(want, chunk.length - at);
        this.#reserve(this.#payloadFill + n);
        // A copy: the caller reuses its read buffer.
        this.#payload.set(chunk.subarray(at, at + n), this.#payloadFill);
        this.#payloadFill += n;
        at += n;
      }
      const done = this.#current && this.#payloadFill === this.#current.length;
      if (done) frames.push(this.#finishFrame());
    }
    return frames;
  }

  /** End of stream: throws FrameError when it cut a frame short. */
  end(): void {
    if (this.#error) throw this.#error;
    if (this.#headerFill === 0) return;
    const what = this.#current
      ? `${this.#payloadFill} of ${this.#current.length} payload bytes of a frame on stream ${this.#current.streamId}`
      : `${this.#headerFill} of ${HEADER_LENGTH} header bytes`;
    this.#fail(`connection ended inside a frame: ${what}`);
  }

  #startFrame(): void {
    const view = new DataView(this.#header.buffer);
    const length = view.getUint32(0);
    const streamId = view.getUint32(4);
    if (length > this.#maxPayload) {
      this.#fail(
        `frame on stream ${streamId} announces ${length} payload bytes, above ttrpc's limit of ${this.#maxPayload}`,
      );
    }
    this.#current = { length, streamId, type: this.#header[8], flags: this.#header[9] };
    this.#payload = new Uint8Array(0);
    this.#payloadFill = 0;
  }

  #reserve(size: number): void {
    if (size <= this.#payload.length) return;
    const capacity = Math.min(
      this.#current!.length,
      Math.max(size, 2 * this.#payload.length, 4096),
    );
    const grown = new Uint8Array(capacity);
    grown.set(this.#payload.subarray(0, this.#payloadFill));
    this.#payload = grown;
  }

  #finishFrame(): Frame {
    const { streamId, type, flags } = this.#current!;
    const payload = this.#payload;
    this.#current = undefined;
    this.#payload = new Uint8Array(0);
    this.#payloadFill = 0;
    this.#headerFill = 0;
    return { streamId, type, flags, payload };
  }

  #fail(message: string): never {
    this.#error = new FrameError(message);
    this.#payload = new Uint8Array(0);
    this.#payloadFill = 0;
    this.#headerFill = 0;
    this.#current = undefined;
    throw this.#error;
  }
}
