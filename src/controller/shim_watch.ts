/**
 * Waits on each live sandbox's shim: the shim is the sandbox's parent and answers its
 * exit — status and time — also while containerd is down, when containerd's own
 * recovery would delete the task before anyone could read it. One pending Wait per
 * sandbox, one connection per shim socket (a pod's containers share their shim), closed
 * once no sandbox of it is watched. Read-only: only Wait goes to a shim.
 *
 * A watch ends with the sandbox's exit (handed to `onExit`), when the sandbox's record
 * gets its exit another way (`unwatch`), or when the shim goes away first (`onLost`: the
 * agent then relies on containerd's events and lists, as without shim wait). Nothing is
 * retried: a shim that is gone stays gone.
 *
 * @module
 */
import { NotFoundError, StatusError } from "../errors.ts";
import { logger } from "../log.ts";
import type { ShimClient, ShimDialer, ShimExit, ShimLocator } from "../shim/mod.ts";
import { errorText } from "./tracker.ts";

const log = logger("controller");

export interface ShimWatchOptions {
  namespace: string;
  locator: ShimLocator;
  dial: ShimDialer;
  /** The shim answered the init process's exit. */
  onExit(id: string, exit: ShimExit): void;
  /** The watch ended without an answer (no shim files, shim gone, refused). */
  onLost?(id: string, reason: string): void;
}

interface Connection {
  client: Promise<ShimClient>;
}

/** One sandbox's watch; `socket` once located; released at most once. */
interface Watch {
  socket?: string;
  released: boolean;
}

export class ShimWatcher {
  readonly #options: ShimWatchOptions;
  readonly #watches = new Map<string, Watch>();
  readonly #connections = new Map<string, Connection>();
  readonly #closing = new AbortController();

  constructor(options: ShimWatchOptions) {
    this.#options = options;
  }

  /** Sandboxes watched now. */
  get size(): number {
    return this.#watches.size;
  }

  /** Shim connections open now. */
  get connections(): number {
    return this.#connections.size;
  }

  isWatched(id: string): boolean {
    return this.#watches.has(id);
  }

  /** Starts waiting on the sandbox's shim, unless a watch of it is on already. */
  watch(id: string): void {
    if (this.#closing.signal.aborted || this.#watches.has(id)) return;
    const watch: Watch = { released: false };
    this.#watches.set(id, watch);
    this.#run(id, watch).catch((err) => {
      log.error("waiting on the shim of {namespace}/{id} failed: {error}", {
        namespace: this.#options.namespace,
        id,
        error: errorText(err),
      });
    });
  }

  /** Stops caring about the sandbox (its exit is recorded); its connection may close. */
  unwatch(id: string): void {
    const watch = this.#watches.get(id);
    if (!watch) return;
    this.#end(id, watch);
  }

  /** Closes every connection; watches end without answers. */
  close(): void {
    this.#closing.abort();
    for (const [socket, conn] of this.#connections) {
      this.#connections.delete(socket);
      conn.client.then((c) => c.close(), () => {});
    }
    this.#watches.clear();
  }

  async #run(id: string, watch: Watch): Promise<void> {
    const { namespace, locator } = this.#options;
    const current = () => this.#watches.get(id) === watch;
    try {
      const endpoint = await locator.locate(namespace, id);
      if (!current()) return; // unwatched meanwhile
      watch.socket = endpoint.socket;
      const client = await this.#connect(endpoint.socket, () => this.#options.dial(endpoint));
      if (!current()) return;
      log.debug("waiting on the shim of {namespace}/{id} at {socket} (task API v{api})", {
        namespace,
        id,
        socket: endpoint.socket,
        api: endpoint.api,
      });
      const exit = await client.wait(id);
      if (!current()) return;
      this.#end(id, watch);
      this.#options.onExit(id, exit);
    } catch (err) {
      if (this.#closing.signal.aborted || !current()) return;
      this.#end(id, watch);
      this.#options.onLost?.(id, lostReason(err));
    } finally {
      if (current()) this.#end(id, watch);
    }
  }

  /** Ends a watch once: forgets it and closes its connection if no other watch uses it. */
  #end(id: string, watch: Watch): void {
    if (this.#watches.get(id) === watch) this.#watches.delete(id);
    if (watch.released) return;
    watch.released = true;
    const socket = watch.socket;
    if (socket === undefined) return;
    for (const other of this.#watches.values()) if (other.socket === socket) return;
    const conn = this.#connections.get(socket);
    if (!conn) return;
    this.#connections.delete(socket);
    conn.client.then((c) => c.close(), () => {});
  }

  /** The connection to `socket`, dialled once and shared; dropped when it ends. */
  #connect(socket: string, dial: () => Promise<ShimClient>): Promise<ShimClient> {
    let conn = this.#connections.get(socket);
    if (!conn) {
      const client = dial();
      const created: Connection = { client };
      conn = created;
      this.#connections.set(socket, created);
      const drop = () => {
        if (this.#connections.get(socket) === created) this.#connections.delete(socket);
      };
      client.then((c) => c.closed.then(drop), drop);
    }
    return conn.client;
  }
}

/** Why a watch ended without an answer, for the log. */
function lostReason(err: unknown): string {
  if (err instanceof NotFoundError) return `no shim for it (${err.message})`;
  if (err instanceof StatusError) return err.message;
  return errorText(err);
}
