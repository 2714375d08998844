/**
 * Client of the agent's socket, used by the CLI commands (and usable by scripts).
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { UnavailableError } from "../errors.ts";
import { ControllerService } from "../gen/containerd/services/sandbox/v1/sandbox.ts";
import {
  HealthCheckResponse_ServingStatus as Serving,
  HealthService,
} from "../gen/grpc/health/v1/health.ts";
import {
  type AgentStatus,
  type Sandbox,
  SandboxesService,
  SandboxState,
  type WatchEvent,
} from "../gen/podsandboxd/v1/podsandboxd.ts";
import {
  type GrpcCallOptions,
  grpcTarget,
  type MethodDefinition,
  serverStreamCall,
  unaryCall,
} from "../grpc/call.ts";
import type { Platform } from "../platform.ts";
import { formatTimestamp } from "../time.ts";

/** grpc-js's wording when no connection to the socket could be made or kept. */
const CONNECT_FAILURE =
  /No connection established|ENOENT|ECONNREFUSED|Connection dropped|Failed to connect/i;

/** @default 10_000 — deadline of calls that do not block by design. */
export const DEFAULT_CLIENT_TIMEOUT_MS = 10_000;

export interface WaitResult {
  id: string;
  exitStatus: number;
  exitedAt?: string;
}

export class AgentClient {
  readonly socketPath: string;
  readonly #client: grpc.Client;
  readonly #namespace?: string;

  /**
   * `namespace` overrides the agent's default namespace. grpc-js shares one connection
   * between clients of the same socket in a process; `ownConnection` gives this client
   * its own (the agent moves a connection on after 64 calls: spread many concurrent
   * calls over several clients).
   */
  constructor(socketPath: string, options: { namespace?: string; ownConnection?: boolean } = {}) {
    this.socketPath = socketPath;
    this.#namespace = options.namespace;
    this.#client = new grpc.Client(grpcTarget(socketPath), grpc.credentials.createInsecure(), {
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 1_000,
      ...(options.ownConnection ? { "grpc.use_local_subchannel_pool": 1 } : {}),
    });
  }

  #options(what: string, timeoutMs: number | undefined, signal?: AbortSignal): GrpcCallOptions {
    return {
      what,
      timeoutMs,
      signal,
      metadata: this.#namespace ? { "containerd-namespace": this.#namespace } : undefined,
    };
  }

  async #call<Req, Res>(
    method: MethodDefinition<Req, Res>,
    request: Req,
    options: GrpcCallOptions,
  ): Promise<Res> {
    try {
      return await unaryCall(this.#client, method, request, options);
    } catch (err) {
      // Only a failure to connect gets the "is it running?" hint; an agent that answers
      // UNAVAILABLE itself (e.g. shutting down) speaks for itself.
      const details = (err as { cause?: grpc.ServiceError }).cause?.details ?? "";
      if (err instanceof UnavailableError && CONNECT_FAILURE.test(details)) {
        throw new UnavailableError(
          `${options.what}: cannot reach podsandboxd at ${this.socketPath} (is "podsandboxd serve" running?): ${
            (err.cause as grpc.ServiceError | undefined)?.details ?? err.message
          }`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  /** Blocks until the sandbox exits (containerd's sandbox Controller.Wait). */
  async wait(
    id: string,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<WaitResult> {
    const res = await this.#call(
      ControllerService.wait,
      { sandboxId: id, sandboxer: "" },
      this.#options(`wait for sandbox ${id}`, options.timeoutMs, options.signal),
    );
    return { id, exitStatus: res.exitStatus, exitedAt: formatTimestamp(res.exitedAt) };
  }

  async get(id: string): Promise<Sandbox> {
    return (await this.describe(id)).sandbox;
  }

  /** The record and the agent's link to containerd when it answered. */
  async describe(id: string): Promise<{ sandbox: Sandbox; agent?: AgentStatus }> {
    const res = await this.#call(
      SandboxesService.get,
      { id, namespace: "" },
      this.#options(`status of sandbox ${id}`, DEFAULT_CLIENT_TIMEOUT_MS),
    );
    if (!res.sandbox) throw new TypeError(`status of sandbox ${id}: empty response`);
    return { sandbox: res.sandbox, agent: res.agent };
  }

  async list(state: SandboxState = SandboxState.SANDBOX_STATE_UNSPECIFIED): Promise<Sandbox[]> {
    return (await this.listWithAgent(state)).sandboxes;
  }

  async listWithAgent(
    state: SandboxState = SandboxState.SANDBOX_STATE_UNSPECIFIED,
  ): Promise<{ sandboxes: Sandbox[]; agent?: AgentStatus }> {
    const res = await this.#call(
      SandboxesService.list,
      { state, namespace: "" },
      this.#options("list sandboxes", DEFAULT_CLIENT_TIMEOUT_MS),
    );
    return { sandboxes: res.sandboxes, agent: res.agent };
  }

  async platform(id = ""): Promise<Platform> {
    const res = await this.#call(
      ControllerService.platform,
      { sandboxId: id, sandboxer: "" },
      this.#options("platform", DEFAULT_CLIENT_TIMEOUT_MS),
    );
    return {
      os: res.platform?.os ?? "",
      architecture: res.platform?.architecture ?? "",
      variant: res.platform?.variant ?? "",
    };
  }

  /** grpc.health.v1 Check of the whole agent. */
  async health(): Promise<"SERVING" | "NOT_SERVING" | "UNKNOWN"> {
    const res = await this.#call(
      HealthService.check,
      { service: "" },
      this.#options("health check", DEFAULT_CLIENT_TIMEOUT_MS),
    );
    return res.status === Serving.SERVING
      ? "SERVING"
      : res.status === Serving.NOT_SERVING
      ? "NOT_SERVING"
      : "UNKNOWN";
  }

  /** Record changes (after a snapshot when asked) until `signal` aborts. */
  watch(
    options: { snapshot?: boolean; signal?: AbortSignal } = {},
  ): AsyncIterable<WatchEvent> {
    return serverStreamCall(this.#client, SandboxesService.watch, {
      namespace: "",
      snapshot: options.snapshot ?? false,
    }, this.#options("watch", undefined, options.signal));
  }

  close(): void {
    this.#client.close();
  }
}
