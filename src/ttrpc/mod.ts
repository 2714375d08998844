/**
 * ttrpc, the RPC protocol of containerd's shims: framing (`frame.ts`) and a client for
 * unary calls over a unix socket (`client.ts`). No npm package speaks it; this one was
 * written from the protocol's wire facts.
 *
 * @module
 */
export { TtrpcClient } from "./client.ts";
export type {
  MessageCodec,
  TtrpcCallOptions,
  TtrpcClientOptions,
  TtrpcConnection,
} from "./client.ts";
export {
  encodeFrame,
  FrameDecoder,
  FrameError,
  FrameFlags,
  FrameType,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
} from "./frame.ts";
export type { Frame } from "./frame.ts";
