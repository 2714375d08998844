/**
 * The agent's API on a local unix socket: containerd's sandbox Controller service and
 * podsandboxd's own Sandboxes service, served by grpc-js.
 *
 * @module
 */
import type { Buffer } from "node:buffer";
import * as net from "node:net";
import * as grpc from "@grpc/grpc-js";
import { ControllerService } from "../gen/containerd/services/sandbox/v1/sandbox.ts";
import { SandboxesService } from "../gen/podsandboxd/v1/podsandboxd.ts";
import { HealthService } from "../gen/grpc/health/v1/health.ts";
import { sandboxControllerHandlers, sandboxesHandlers } from "./handlers.ts";
import { logger } from "../log.ts";
import { capStreamsPerConnection } from "./connection_cap.ts";
import { withoutClientGoaway } from "./goaway_filter.ts";
import { healthHandlers } from "./health.ts";
import { MalformedRequest } from "./malformed.ts";
import { prepareSocketPath, secureSocket } from "./socket.ts";
import type { SandboxService } from "./types.ts";
import type { SandboxKey } from "../store/types.ts";

const log = logger("server");

/** Requests are a few ids; anything bigger is refused before it is parsed. */
export const MAX_REQUEST_BYTES = 64 * 1024;

export interface ApiServerOptions {
  socketPath: string;
  service: SandboxService;
  /** @default 0o660 */
  socketMode?: number;
  /** Group owning the socket. @default DEFAULT_SOCKET_GROUP when it exists */
  socketGroup?: string;
  /** Told when each Wait answer is written (exit tracing). */
  onWaitAnswered?: (key: SandboxKey) => void;
}

/**
 * The service definition with decoding failures turned into MalformedRequest values:
 * grpc-js would answer a throwing deserializer with INTERNAL, but a garbled request is
 * the client's error.
 */
function tolerant(definition: object): grpc.ServiceDefinition {
  return Object.fromEntries(
    Object.entries(definition).map(([name, method]) => [name, {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return new MalformedRequest(err instanceof Error ? err.message : String(err));
        }
      },
    }]),
  ) as grpc.ServiceDefinition;
}

export class ApiServer {
  readonly socketPath: string;
  readonly #server: grpc.Server;
  readonly #listener: net.Server;

  private constructor(server: grpc.Server, listener: net.Server, socketPath: string) {
    this.#server = server;
    this.#listener = listener;
    this.socketPath = socketPath;
  }

  /** Binds the socket (after checking its path) and starts serving. */
  static async start(options: ApiServerOptions): Promise<ApiServer> {
    const server = new grpc.Server({
      "grpc.max_receive_message_length": MAX_REQUEST_BYTES,
    });
    server.addService(
      tolerant(ControllerService),
      sandboxControllerHandlers(options.service, {
        onWaitAnswered: options.onWaitAnswered,
      }) as unknown as grpc.UntypedServiceImplementation,
    );
    server.addService(
      tolerant(SandboxesService),
      sandboxesHandlers(options.service) as unknown as grpc.UntypedServiceImplementation,
    );
    server.addService(
      tolerant(HealthService),
      healthHandlers(options.service) as unknown as grpc.UntypedServiceImplementation,
    );
    await prepareSocketPath(options.socketPath);
    // The agent accepts connections itself and hands them to grpc-js without the
    // clients' GOAWAY frames (goaway_filter.ts: they abort Deno's node:http2).
    const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const listener = net.createServer((socket) => {
      injector.injectConnection(withoutClientGoaway(socket));
    });
    await new Promise<void>((resolve, reject) => {
      const refused = (err: Error) =>
        reject(new Error(`cannot listen on ${options.socketPath}: ${err.message}`, { cause: err }));
      listener.once("error", refused);
      listener.listen(options.socketPath, () => {
        listener.off("error", refused);
        resolve();
      });
    });
    // Later errors (an accept failing, e.g. out of file descriptors) must not end the agent.
    listener.on(
      "error",
      (err) => log.warn("accepting a connection failed: {error}", { error: String(err) }),
    );
    if (!capStreamsPerConnection(server)) {
      log.warn(
        "could not cap streams per connection (grpc-js internals changed): a client closing a connection after 256 calls can abort the agent (denoland/deno#36788)",
      );
    }
    try {
      await secureSocket(options.socketPath, {
        mode: options.socketMode ?? 0o660,
        group: options.socketGroup,
      });
    } catch (err) {
      listener.close();
      server.forceShutdown();
      await Deno.remove(options.socketPath).catch(() => {});
      throw err;
    }
    return new ApiServer(server, listener, options.socketPath);
  }

  /**
   * Stops accepting calls, lets in-flight ones finish for up to `graceMs`, then cuts
   * them. Resolves within about `graceMs` + 500 ms even when clients hold connections
   * that never spoke HTTP/2 (grpc-js cannot cut those; the process exit does).
   */
  async close(graceMs = 2_000): Promise<void> {
    this.#listener.close(); // no new connections; those open end below
    const graceful = new Promise<void>((resolve) => this.#server.tryShutdown(() => resolve()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cut = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#server.forceShutdown();
        setTimeout(resolve, 500);
      }, graceMs);
    });
    await Promise.race([graceful, cut]);
    clearTimeout(timer);
    await Deno.remove(this.socketPath).catch(() => {});
  }
}
