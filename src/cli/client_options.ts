/**
 * Options shared by the commands that talk to a running agent.
 *
 * @module
 */
import { clientSocketPath, defaultSocketPath, processEnv } from "../config/defaults.ts";
import { clientNeeds } from "../permissions/needs.ts";
import { checkPermissions } from "./preflight.ts";
import { validateIdentifier } from "../ids.ts";
import { AgentClient } from "./client.ts";
import { UsageError } from "./command.ts";

export const CLIENT_FLAGS = {
  socket: { type: "string" },
  namespace: { type: "string" },
  json: { type: "boolean" },
} as const;

export function clientFlagsHelp(): string {
  return [
    "  --socket PATH     the agent's socket (default: " + defaultSocketPath(processEnv) + ")",
    "  --namespace NS    containerd namespace (default: the agent's)",
    "  --json            print one JSON document",
  ].join("\n");
}

/** The client for parsed flags; UsageError for bad values, MissingPermissionError for a socket not granted. */
export function clientFromFlags(values: Record<string, unknown>): AgentClient {
  const socket = clientSocketPath(values.socket as string | undefined);
  if (!socket.startsWith("/")) {
    throw new UsageError(
      `--socket: invalid path ${JSON.stringify(socket)}: an absolute path is required`,
    );
  }
  const namespace = values.namespace as string | undefined;
  if (namespace !== undefined) {
    try {
      validateIdentifier("--namespace", namespace);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
  }
  checkPermissions(clientNeeds(socket));
  return new AgentClient(socket, { namespace });
}

/** Validates a sandbox id argument before any call. */
export function sandboxIdArg(id: string): string {
  try {
    validateIdentifier("sandbox id", id);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return id;
}
