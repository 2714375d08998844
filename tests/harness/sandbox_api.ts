/**
 * A client of containerd's sandbox Controller API (`containerd.services.sandbox.v1`), for
 * either side of a parity test: containerd's own controller on containerd's socket
 * (containerd 2.x; `sandboxer` names it, "podsandbox" for CRI pods) or podsandboxd on its
 * socket. Same messages, same field numbers; every call carries the namespace.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { ControllerService } from "../../src/gen/containerd/services/sandbox/v1/sandbox.ts";
import type { Platform } from "../../src/gen/containerd/types/platform.ts";
import { grpcTarget, unaryCall } from "../../src/grpc/call.ts";
import { formatTimestamp } from "../../src/time.ts";

/** A Controller answer in comparable terms (RFC 3339 times with nanoseconds). */
export interface SandboxStatus {
  state: string;
  pid: number;
  createdAt?: string;
  exitedAt?: string;
}

export interface SandboxExitAnswer {
  exitStatus: number;
  exitedAt?: string;
}

export class SandboxControllerClient {
  readonly #client: grpc.Client;
  readonly #name: string;

  constructor(
    socket: string,
    readonly options: { name: string; sandboxer?: string; namespace: string },
  ) {
    this.#name = options.name;
    this.#client = new grpc.Client(grpcTarget(socket), grpc.credentials.createInsecure());
  }

  #call(what: string, timeoutMs: number | undefined) {
    return {
      what: `${this.#name} Controller.${what}`,
      metadata: { "containerd-namespace": this.options.namespace },
      timeoutMs,
    };
  }

  async status(id: string): Promise<SandboxStatus> {
    const res = await unaryCall(this.#client, ControllerService.status, {
      sandboxId: id,
      verbose: false,
      sandboxer: this.options.sandboxer ?? "",
    }, this.#call(`Status ${id}`, 10_000));
    return {
      state: res.state,
      pid: res.pid,
      createdAt: formatTimestamp(res.createdAt),
      exitedAt: formatTimestamp(res.exitedAt),
    };
  }

  /** Blocks until the sandbox exits (bounded by `timeoutMs`). */
  async wait(id: string, timeoutMs = 30_000): Promise<SandboxExitAnswer> {
    const res = await unaryCall(this.#client, ControllerService.wait, {
      sandboxId: id,
      sandboxer: this.options.sandboxer ?? "",
    }, this.#call(`Wait ${id}`, timeoutMs));
    return { exitStatus: res.exitStatus, exitedAt: formatTimestamp(res.exitedAt) };
  }

  async platform(id: string): Promise<Platform | undefined> {
    const res = await unaryCall(this.#client, ControllerService.platform, {
      sandboxId: id,
      sandboxer: this.options.sandboxer ?? "",
    }, this.#call(`Platform ${id}`, 10_000));
    return res.platform;
  }

  close(): void {
    this.#client.close();
  }
}
