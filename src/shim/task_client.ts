/**
 * `ShimClient` over ttrpc: the shim's task API (v2 or v3, as the endpoint says), reduced
 * to its two reads, Wait and State. The ttrpc connection stays private, so nothing that
 * holds a ShimClient can send Kill, Delete or Shutdown.
 *
 * @module
 */
import { taskStatusName } from "../containerd/task_status.ts";
import type { StatusError } from "../errors.ts";
import {
  StateRequest,
  StateResponse,
  WaitRequest,
  WaitResponse,
} from "../gen/containerd/runtime/task/shim.ts";
import { formatTimestamp } from "../time.ts";
import { TtrpcClient } from "../ttrpc/client.ts";
import type {
  ShimCallOptions,
  ShimClient,
  ShimDialer,
  ShimEndpoint,
  ShimExit,
  ShimState,
} from "./types.ts";

export class TtrpcShimClient implements ShimClient {
  readonly endpoint: ShimEndpoint;
  readonly closed: Promise<StatusError>;
  readonly #ttrpc: TtrpcClient;

  constructor(endpoint: ShimEndpoint, ttrpc: TtrpcClient) {
    this.endpoint = endpoint;
    this.#ttrpc = ttrpc;
    this.closed = ttrpc.closed;
  }

  async wait(id: string, options: ShimCallOptions = {}): Promise<ShimExit> {
    const res = await this.#ttrpc.unary(
      this.endpoint.service,
      "Wait",
      WaitRequest,
      WaitResponse,
      { id, execId: "" },
      { ...options, what: this.#what("Wait", id) },
    );
    return { exitStatus: res.exitStatus, exitedAt: formatTimestamp(res.exitedAt) };
  }

  async state(id: string, options: ShimCallOptions = {}): Promise<ShimState> {
    const res = await this.#ttrpc.unary(
      this.endpoint.service,
      "State",
      StateRequest,
      StateResponse,
      { id, execId: "" },
      { ...options, what: this.#what("State", id) },
    );
    return {
      id: res.id,
      pid: res.pid,
      status: taskStatusName(res.status),
      exitStatus: res.exitStatus,
      exitedAt: formatTimestamp(res.exitedAt),
    };
  }

  close(): void {
    this.#ttrpc.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.#ttrpc[Symbol.asyncDispose]();
  }

  #what(method: string, id: string): string {
    const e = this.endpoint;
    return `shim ${e.service}/${method} ${e.namespace}/${id} on ${e.socket}`;
  }
}

/**
 * Connects to the shim at `endpoint`. Rejects with UnavailableError when its socket is
 * gone or refuses (the shim exited); a missing Deno permission is rethrown as is.
 */
export const dialShim: ShimDialer = async (endpoint, options = {}) => {
  const ttrpc = await TtrpcClient.connect(endpoint.socket, { signal: options.signal });
  return new TtrpcShimClient(endpoint, ttrpc);
};
