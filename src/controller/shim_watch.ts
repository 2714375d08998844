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
 * retried: a shim that is gone stays gone — a sandbox whose watch was lost is not watched
 * again (each resync would otherwise look for its shim and log it again) until `unwatch`
 * forgets it (its exit recorded, or it was removed: a new sandbox may take the id).
 *
 * @module
 */
import { NotFoundError } from "../errors.ts";
import { logger } from "../log.ts";
import type { ShimClient, ShimDialer, ShimExit, ShimLocator } from "../shim/mod.ts";
import { errorText } from "./tracker.ts";

const log = logger("controller");

/**
 * Watches finding and dialling their shims at once. Thousands of sandboxes at start-up
 * would otherwise read their shims' files and connect all at once, holding the event
 * loop and the file-system threads from the agent's socket (measured: 10,000 sandboxes
 * without shim files delayed the first answer by 2 s); waiting is not limited.
 */
export const MAX_STARTING_WATCHES = 16;

export interface ShimWatchOptions {
  namespace: string;
  locator: ShimLocator;
  dial: ShimDialer;
  /** The shim answered the init process's exit. */
  onExit(id: string, exit: ShimExit): void;
  /** The watch ended without an answer (no shim files, shim gone, refused). */
  onLost?(id: string, reason: string): void;
  /** Watches find and dial their shims only once this settles (default: at once). */
  startAfter?: Promise<unknown>;
}

/** A shim connection and how many watches use it. */
interface Connection {
  socket: string;
  client: Promise<ShimClient>;
  users: number;
}

/** One sandbox's watch; `connection` once its shim is located. */
interface Watch {
  connection?: Connection;
}

export class ShimWatcher {
  readonly #options: ShimWatchOptions;
  readonly #watches = new Map<string, Watch>();
  readonly #connections = new Map<string, Connection>();
  readonly #closing = new AbortController();
  /** Sandboxes whose watch ended without an answer: not watched again. */
  readonly #lost = new Set<string>();
  #starting = 0;
  // A FIFO: an array read from #startHead (shift() is linear in its length).
  #startQueue: Array<() => void> = [];
  #startHead = 0;

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

  /** Starts waiting on the sandbox's shim, unless a watch of it is on already. */
  watch(id: string): void {
    if (this.#closing.signal.aborted || this.#watches.has(id) || this.#lost.has(id)) return;
    const watch: Watch = {};
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
    this.#lost.delete(id);
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
    let started = false;
    try {
      await this.#startSlot();
      started = true;
      if (!current()) return; // unwatched meanwhile
      const endpoint = await locator.locate(namespace, id);
      if (!current()) return;
      watch.connection = this.#connect(endpoint.socket, () => this.#options.dial(endpoint));
      const client = await watch.connection.client;
      this.#endSlot();
      started = false;
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
      this.#lost.add(id);
      this.#options.onLost?.(id, lostReason(err));
    } finally {
      if (started) this.#endSlot();
    }
  }

  /**
   * Resolves once `startAfter` settled and fewer than MAX_STARTING_WATCHES watches are
   * finding their shims; the caller then holds a slot until #endSlot.
   */
  async #startSlot(): Promise<void> {
    if (this.#options.startAfter) await this.#options.startAfter.catch(() => {});
    if (this.#starting < MAX_STARTING_WATCHES) {
      this.#starting++;
      return;
    }
    await new Promise<void>((resolve) => this.#startQueue.push(resolve));
  }

  /** Hands the slot to the next watch waiting for one, or frees it. */
  #endSlot(): void {
    if (this.#startHead < this.#startQueue.length) {
      const next = this.#startQueue[this.#startHead++];
      if (this.#startHead > 1024 && this.#startHead * 2 > this.#startQueue.length) {
        this.#startQueue = this.#startQueue.slice(this.#startHead);
        this.#startHead = 0;
      }
      next();
    } else this.#starting--;
  }

  /** Ends a current watch: forgets it and closes its connection if no other watch uses it. */
  #end(id: string, watch: Watch): void {
    if (this.#watches.get(id) !== watch) return;
    this.#watches.delete(id);
    const conn = watch.connection;
    if (!conn || --conn.users > 0) return;
    if (this.#connections.get(conn.socket) === conn) this.#connections.delete(conn.socket);
    conn.client.then((c) => c.close(), () => {});
  }

  /** The connection to `socket`, dialled once and shared (one more user); dropped when it ends. */
  #connect(socket: string, dial: () => Promise<ShimClient>): Connection {
    let conn = this.#connections.get(socket);
    if (!conn) {
      const created: Connection = { socket, client: dial(), users: 0 };
      conn = created;
      this.#connections.set(socket, created);
      const drop = () => {
        if (this.#connections.get(socket) === created) this.#connections.delete(socket);
      };
      created.client.then((c) => c.closed.then(drop), drop);
    }
    conn.users++;
    return conn;
  }
}

/** Why a watch ended without an answer, for the log. */
function lostReason(err: unknown): string {
  if (err instanceof NotFoundError) return `no shim for it (${err.message})`;
  return errorText(err);
}
