/**
 * A client of containerd's sandbox Controller service built at test time from the
 * .proto alone (by @grpc/proto-loader), independent of the generated code the agent
 * uses — so the wire shapes are checked, not just our own encoder against itself.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_ROOT = new URL("../../src/proto/", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
type Message = any;

export async function loadSandboxControllerClient(socket: string) {
  const definition = await protoLoader.load("containerd/services/sandbox/v1/sandbox.proto", {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    longs: String,
    defaults: true,
  });
  // deno-lint-ignore no-explicit-any
  const pkg = grpc.loadPackageDefinition(definition) as any;
  const Controller = pkg.containerd.services.sandbox.v1.Controller;
  const client = new Controller(`unix://${socket}`, grpc.credentials.createInsecure());
  return {
    call(
      method: string,
      request: Message,
      metadata: Record<string, string> = {},
    ): Promise<Message> {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(metadata)) md.set(k, v);
      return new Promise((resolve, reject) =>
        client[method](
          request,
          md,
          { deadline: Date.now() + 10_000 },
          (err: unknown, res: Message) => err ? reject(err) : resolve(res),
        )
      );
    },
    close() {
      client.close();
    },
  };
}
