/**
 * The agent's API on a local unix socket: containerd's sandbox Controller service and
 * podsandboxd's own Sandboxes service, served by grpc-js.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { ControllerService } from "../gen/containerd/services/sandbox/v1/sandbox.ts";
import { SandboxesService } from "../gen/podsandboxd/v1/podsandboxd.ts";
import { HealthService } from "../gen/grpc/health/v1/health.ts";
import { sandboxControllerHandlers, sandboxesHandlers } from "./handlers.ts";
import { healthHandlers } from "./health.ts";
import { prepareSocketPath } from "./socket.ts";
import type { SandboxService } from "./types.ts";

/** Requests are a few ids; anything bigger is refused before it is parsed. */
export const MAX_REQUEST_BYTES = 64 * 1024;

export interface ApiServerOptions {
  socketPath: string;
  service: SandboxService;
  /** @default 0o660 */
  socketMode?: number;
}

export class ApiServer {
  readonly socketPath: string;
  readonly #server: grpc.Server;

  private constructor(server: grpc.Server, socketPath: string) {
    this.#server = server;
    this.socketPath = socketPath;
  }

  /** Binds the socket (after checking its path) and starts serving. */
  static async start(options: ApiServerOptions): Promise<ApiServer> {
    const server = new grpc.Server({
      "grpc.max_receive_message_length": MAX_REQUEST_BYTES,
    });
    server.addService(
      ControllerService as unknown as grpc.ServiceDefinition,
      sandboxControllerHandlers(options.service) as unknown as grpc.UntypedServiceImplementation,
    );
    server.addService(
      SandboxesService as unknown as grpc.ServiceDefinition,
      sandboxesHandlers(options.service) as unknown as grpc.UntypedServiceImplementation,
    );
    server.addService(
      HealthService as unknown as grpc.ServiceDefinition,
      healthHandlers(options.service) as unknown as grpc.UntypedServiceImplementation,
    );
    await prepareSocketPath(options.socketPath);
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(
        `unix://${options.socketPath}`,
        grpc.ServerCredentials.createInsecure(),
        (
          err,
        ) => (err
          ? reject(
            new Error(`cannot listen on ${options.socketPath}: ${err.message}`, { cause: err }),
          )
          : resolve()),
      );
    });
    await Deno.chmod(options.socketPath, options.socketMode ?? 0o660);
    return new ApiServer(server, options.socketPath);
  }

  /** Stops accepting calls, lets in-flight ones finish for up to `graceMs`, then cuts them. */
  async close(graceMs = 2_000): Promise<void> {
    const graceful = new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    const timer = setTimeout(() => this.#server.forceShutdown(), graceMs);
    await graceful;
    clearTimeout(timer);
    await Deno.remove(this.socketPath).catch(() => {});
  }
}
