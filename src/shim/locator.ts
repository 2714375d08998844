/**
 * Finds a task's shim from containerd's state directory, as containerd itself does when
 * it restarts: `<state>/io.containerd.runtime.v2.task/<namespace>/<id>/bootstrap.json`
 * (containerd 2.x: `{"version":3,"address":"unix:///…","protocol":"ttrpc"}`) when it
 * exists, else the `address` file beside it (1.6/1.7: `unix:///run/containerd/s/<hash>`,
 * task API v2). Only reads files; works while containerd is down.
 *
 * @module
 */
import { join } from "node:path";
import { TASK_BUNDLES_DIR } from "../config/defaults.ts";
import {
  FailedPreconditionError,
  NotFoundError,
  StatusError,
  UnimplementedError,
} from "../errors.ts";
import { validateIdentifier } from "../ids.ts";
import type { ShimEndpoint, ShimLocator, ShimTaskApi } from "./types.ts";

/** containerd's directory of runtime v2 task bundles, under its state directory. */
export { TASK_BUNDLES_DIR };
/** The ttrpc service of each task API version. */
export const TASK_SERVICES: Record<ShimTaskApi, string> = {
  2: "containerd.task.v2.Task",
  3: "containerd.task.v3.Task",
};
/** Bootstrap files are a few hundred bytes; anything bigger is not one. */
const MAX_FILE_BYTES = 64 * 1024;

export class StateDirShimLocator implements ShimLocator {
  /** @param stateDir containerd's state directory (its `state` setting, /run/containerd by default). */
  constructor(readonly stateDir: string) {}

  async locate(namespace: string, id: string): Promise<ShimEndpoint> {
    validateIdentifier("namespace", namespace);
    validateIdentifier("task id", id);
    const bundle = join(this.stateDir, TASK_BUNDLES_DIR, namespace, id);
    const bootstrapPath = join(bundle, "bootstrap.json");
    const bootstrap = await readSmallFile(bootstrapPath);
    if (bootstrap !== undefined) {
      return endpointOf(namespace, id, bootstrapPath, parseBootstrap(bootstrap, bootstrapPath));
    }
    const addressPath = join(bundle, "address");
    const address = await readSmallFile(addressPath);
    if (address === undefined) {
      throw new NotFoundError(
        `no shim for task ${namespace}/${id}: neither ${bootstrapPath} nor ${addressPath} exists ` +
          `(no such task, or it was deleted; is ${this.stateDir} containerd's state directory?)`,
      );
    }
    return endpointOf(namespace, id, addressPath, { api: 2, protocol: "ttrpc", address });
  }

  async list(namespace: string): Promise<string[]> {
    validateIdentifier("namespace", namespace);
    const dir = join(this.stateDir, TASK_BUNDLES_DIR, namespace);
    const ids: string[] = [];
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (entry.isDirectory) ids.push(entry.name);
      }
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw fileError(dir, err);
    }
    return ids.sort();
  }
}

interface Bootstrap {
  api: number;
  protocol: string;
  address: string;
}

/**
 * containerd's reading of a bootstrap file: JSON with a version of at least 2, or else
 * the whole text is an address of a v2 ttrpc shim.
 */
function parseBootstrap(text: string, path: string): Bootstrap {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { api: 2, protocol: "ttrpc", address: text };
  }
  const p = parsed as { version?: unknown; address?: unknown; protocol?: unknown };
  if (typeof p !== "object" || p === null || typeof p.version !== "number" || p.version < 2) {
    return { api: 2, protocol: "ttrpc", address: text };
  }
  if (typeof p.address !== "string" || typeof p.protocol !== "string") {
    throw new FailedPreconditionError(
      `${path}: expected string "address" and "protocol", got ${text.slice(0, 200)}`,
    );
  }
  return { api: p.version, protocol: p.protocol, address: p.address };
}

function endpointOf(namespace: string, id: string, source: string, b: Bootstrap): ShimEndpoint {
  const task = `${namespace}/${id}`;
  if (b.api !== 2 && b.api !== 3) {
    throw new UnimplementedError(
      `shim of task ${task} serves task API version ${b.api} (${source}); podsandboxd speaks versions 2 and 3`,
    );
  }
  if (b.protocol.toLowerCase() !== "ttrpc") {
    throw new UnimplementedError(
      `shim of task ${task} speaks ${
        JSON.stringify(b.protocol)
      } (${source}); podsandboxd speaks only ttrpc`,
    );
  }
  const address = b.address.trim();
  const socket = address.startsWith("unix://") ? address.slice("unix://".length) : address;
  if (!socket.startsWith("/")) {
    // vsock://, abstract (@…) and relative addresses have no socket file to connect to.
    throw new UnimplementedError(
      `shim of task ${task} listens on ${JSON.stringify(address.slice(0, 200))} (${source}); ` +
        `podsandboxd connects only to unix:///absolute/path sockets`,
    );
  }
  return { namespace, id, socket, api: b.api, service: TASK_SERVICES[b.api], source };
}

/** The file's text, or undefined when it does not exist. */
async function readSmallFile(path: string): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw fileError(path, err);
  }
  try {
    const buf = new Uint8Array(MAX_FILE_BYTES + 1);
    let n = 0;
    for (;;) {
      const got = await file.read(buf.subarray(n));
      if (got === null) break;
      n += got;
      if (n > MAX_FILE_BYTES) {
        throw new FailedPreconditionError(`${path} is larger than ${MAX_FILE_BYTES} bytes`);
      }
    }
    return new TextDecoder().decode(buf.subarray(0, n));
  } catch (err) {
    throw err instanceof StatusError ? err : fileError(path, err);
  } finally {
    file.close();
  }
}

function fileError(path: string, err: unknown): Error {
  // A missing Deno permission names its flag: keep it as it is.
  if (err instanceof Deno.errors.NotCapable) return err;
  return new FailedPreconditionError(`cannot read ${path}: ${(err as Error).message}`, {
    cause: err,
  });
}
