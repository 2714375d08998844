/**
 * `SandboxStore` on Deno KV (SQLite on disk). One key per sandbox,
 * `["sandbox", namespace, id]`, written only through versionstamp-checked atomic
 * commits, plus `["meta", "schema"]`. Concurrent writes share commits (group_commit.ts):
 * a burst of exits costs one SQLite transaction per group, not one per exit. The record
 * a write starts from is the one this store last committed or read, when it has it: its
 * versionstamp is checked by the commit, so a stale one only costs a re-read. A write
 * judged a no-op commits nothing and checks nothing, so that copy must never be older
 * than what the store itself wrote: a copy is replaced only by a newer one (versionstamps
 * grow with every commit), and an expired record leaves a tombstone.
 *
 * @module
 */
import { instantFromDate } from "../time.ts";
import { GroupCommitter } from "./group_commit.ts";
import { KvOwnedSandboxes } from "./owned.ts";
import * as t from "./transitions.ts";
import type {
  ListFilter,
  PendingExit,
  SandboxDescription,
  SandboxExit,
  SandboxKey,
  SandboxRecord,
  SandboxStore,
  StoreResult,
} from "./types.ts";

/** Version of the record layout this code reads and writes. */
export const SCHEMA_VERSION = 1;

/** File name of the KV database inside the state directory. */
export const STATE_FILE = "podsandboxd.kv";

const SCHEMA_KEY = ["meta", "schema"] as const;
const recordKey = (k: SandboxKey) => ["sandbox", k.namespace, k.id] as const;
const pendingKey = (k: SandboxKey) => ["pending", k.namespace, k.id] as const;
/** Writes of one sandbox (its record and its pending exit) never share a group commit. */
const subject = (k: SandboxKey) => `${k.namespace}\0${k.id}`;

/** Records remembered with their versionstamps (oldest forgotten first). @default 32_768 */
export const KNOWN_RECORDS = 32_768;

/** The store file cannot be read: the agent refuses to start rather than wipe it. */
export class CorruptStateError extends Error {
  override name = "CorruptStateError";
}

function corrupt(path: string, err: unknown): CorruptStateError {
  const reason = err instanceof Error ? err.message : String(err);
  return new CorruptStateError(
    `state file ${path} cannot be read (${reason}). It is left untouched. To start over, ` +
      `stop podsandboxd and move it aside (mv ${path} ${path}.corrupt); the agent then re-learns ` +
      "running sandboxes from containerd, and exits recorded only in the old file are lost",
    { cause: err },
  );
}

export interface KvStoreOptions {
  /** Clock for `updatedAt`/`recordedAt`; tests pass a fake. @default () => new Date() */
  now?: () => Date;
  /** Called with the duration of each committed write, in seconds (metrics). */
  onCommit?: (seconds: number) => void;
  /**
   * Called after each commit with the sandboxes it wrote ("namespace/id") and when it ran
   * (wall-clock ms): how writes shared commits (exit tracing).
   */
  onGroupCommit?: (keys: string[], startedAt: number, endedAt: number) => void;
  /** Opens the database; tests wrap it to interleave operations. @default Deno.openKv */
  openKv?: (path: string) => Promise<Deno.Kv>;
}

/**
 * A record as this store last knew it: the entry to check a commit against, and the
 * versionstamp that orders it (for a tombstone, the deleting commit's).
 */
interface Known {
  entry: Deno.KvEntryMaybe<SandboxRecord>;
  stamp: string;
}

export class KvSandboxStore implements SandboxStore {
  readonly #kv: Deno.Kv;
  readonly #now: () => Date;
  readonly #commits: GroupCommitter;
  /** Subject → the record as last committed or read here, with its versionstamp. */
  readonly #known = new Map<string, Known>();
  readonly owned: KvOwnedSandboxes;

  private constructor(kv: Deno.Kv, options: KvStoreOptions) {
    this.#kv = kv;
    this.owned = new KvOwnedSandboxes(kv);
    this.#now = options.now ?? (() => new Date());
    const onGroupCommit = options.onGroupCommit;
    this.#commits = new GroupCommitter(kv, {
      onCommit: options.onCommit,
      onGroup: onGroupCommit &&
        ((subjects, startedAt, endedAt) =>
          onGroupCommit(subjects.map((s) => s.replace("\0", "/")), startedAt, endedAt)),
    });
  }

  /**
   * Opens (creating if needed) the store at `path` — a file path, or ":memory:" for
   * tests. Never call Deno.openKv() without a path: compiled, that is an in-memory store.
   * Throws when the state was written by a newer schema.
   */
  static async open(path: string, options: KvStoreOptions = {}): Promise<KvSandboxStore> {
    let kv: Deno.Kv;
    try {
      kv = await (options.openKv ?? Deno.openKv)(path);
    } catch (err) {
      throw corrupt(path, err);
    }
    try {
      const schema = await kv.get<number>(SCHEMA_KEY);
      if (schema.value === null) {
        await kv.atomic().check(schema).set(SCHEMA_KEY, SCHEMA_VERSION).commit();
      } else if (schema.value > SCHEMA_VERSION) {
        throw new Error(
          `state ${path} has schema version ${schema.value}, newer than this podsandboxd ` +
            `understands (${SCHEMA_VERSION}); run a newer podsandboxd or move the state away`,
        );
      }
      // Reading every record proves the file is whole before the agent relies on it.
      for await (const _ of kv.list({ prefix: [] }, { batchSize: 1000 })) { /* read through */ }
    } catch (err) {
      kv.close();
      throw err instanceof Error && /schema version/.test(err.message) ? err : corrupt(path, err);
    }
    return new KvSandboxStore(kv, options);
  }

  async get(key: SandboxKey): Promise<SandboxRecord | null> {
    return (await this.#kv.get<SandboxRecord>(recordKey(key))).value;
  }

  async list(filter: ListFilter = {}): Promise<SandboxRecord[]> {
    const prefix = filter.namespace === undefined ? ["sandbox"] : ["sandbox", filter.namespace];
    const out: SandboxRecord[] = [];
    for await (const entry of this.#kv.list<SandboxRecord>({ prefix }, { batchSize: 1000 })) {
      // Read before a concurrent commit or expiry, an entry must not replace a newer copy.
      this.#remember(subject(entry.value), entry);
      if (filter.state === undefined || entry.value.state === filter.state) out.push(entry.value);
    }
    return out;
  }

  discover(key: SandboxKey, description: SandboxDescription): Promise<StoreResult> {
    return this.#apply(key, t.discover(key, description)) as Promise<StoreResult>;
  }

  markRunning(
    key: SandboxKey,
    pid: number,
    description?: SandboxDescription,
  ): Promise<StoreResult> {
    return this.#apply(key, t.markRunning(key, pid, description)) as Promise<StoreResult>;
  }

  async recordExit(
    key: SandboxKey,
    exit: Omit<SandboxExit, "recordedAt">,
    description?: SandboxDescription,
  ): Promise<StoreResult> {
    // The pending entry goes in the same commit as the exit: never one without the other.
    const result = await this.#apply(
      key,
      t.recordExit(key, exit, description),
      (op) => op.delete(pendingKey(key)),
    );
    // Unchanged (a duplicate exit, e.g. the TaskDelete after a TaskExit): a pending entry
    // can only be left over from an interrupted run; look before writing, this path is hot.
    if (!result!.changed && (await this.#kv.get(pendingKey(key))).value !== null) {
      await this.#kv.delete(pendingKey(key));
    }
    return result!;
  }

  async expireRemoved(before: string, followed: string): Promise<SandboxRecord[]> {
    const expired: SandboxRecord[] = [];
    for await (
      const entry of this.#kv.list<SandboxRecord>({ prefix: ["sandbox"] }, { batchSize: 1000 })
    ) {
      const { deletedAt, exit, namespace, updatedAt } = entry.value;
      const due = namespace === followed
        ? deletedAt !== undefined && deletedAt < before && exit !== undefined
        : updatedAt < before;
      if (!due) continue;
      const pending = await this.#kv.get(pendingKey(entry.value));
      if (pending.value !== null) continue;
      // Only if unchanged since we read it.
      const res = await this.#kv.atomic().check(entry).check(pending).delete(entry.key).commit();
      if (res.ok) {
        // A tombstone: a listing that read the record before this delete must not bring
        // it back into the cache.
        this.#remember(subject(entry.value), {
          entry: { key: entry.key, value: null, versionstamp: null },
          stamp: res.versionstamp,
        });
        expired.push(entry.value);
      }
    }
    return expired;
  }

  async savePendingExit(
    key: SandboxKey,
    exit: Omit<SandboxExit, "recordedAt">,
    description?: SandboxDescription,
  ): Promise<void> {
    const pending: PendingExit = {
      key,
      exit,
      description,
      attempts: 0,
      since: instantFromDate(this.#now()),
    };
    // Set only if absent: a retry must not reset the attempt count.
    await this.#commits.commit({
      subject: subject(key),
      build: (op) =>
        op.check({ key: pendingKey(key), versionstamp: null }).set(pendingKey(key), pending),
    });
  }

  async notePendingFailure(key: SandboxKey, error: string): Promise<void> {
    for (;;) {
      const current = await this.#kv.get<PendingExit>(pendingKey(key));
      if (current.value === null) return;
      const next = { ...current.value, attempts: current.value.attempts + 1, lastError: error };
      const committed = await this.#commits.commit({
        subject: subject(key),
        build: (op) => op.check(current).set(pendingKey(key), next),
      });
      if (committed !== null) return;
    }
  }

  async listPendingExits(filter: { namespace?: string } = {}): Promise<PendingExit[]> {
    const prefix = filter.namespace === undefined ? ["pending"] : ["pending", filter.namespace];
    const out: PendingExit[] = [];
    for await (const entry of this.#kv.list<PendingExit>({ prefix })) out.push(entry.value);
    return out;
  }

  markDeleted(key: SandboxKey, at: string): Promise<StoreResult | null> {
    return this.#apply(key, t.markDeleted(at));
  }

  /**
   * Read, transform, commit only if nobody wrote in between; retry on conflict. `also`
   * adds mutations to the same atomic commit. Resolves once committed (durable).
   */
  async #apply(
    key: SandboxKey,
    transition: t.Transition,
    also?: (op: Deno.AtomicOperation) => void,
  ): Promise<StoreResult | null> {
    const k = recordKey(key);
    const s = subject(key);
    for (;;) {
      const current = this.#known.get(s)?.entry ?? await this.#kv.get<SandboxRecord>(k);
      const next = transition(current.value, instantFromDate(this.#now()));
      if (next === null) {
        if (current.value !== null) this.#remember(s, current);
        return current.value === null ? null : { record: current.value, changed: false };
      }
      const versionstamp = await this.#commits.commit({
        subject: s,
        build: (op) => {
          op.check(current).set(k, next);
          also?.(op);
        },
      });
      if (versionstamp !== null) {
        this.#remember(s, { key: k, value: next, versionstamp });
        // Transitions change a known creation time only to start a newer container's record.
        const previous = current.value;
        const replaced = previous?.createdAt !== undefined && previous.createdAt !== next.createdAt
          ? previous
          : undefined;
        return { record: next, changed: true, ...(replaced && { replaced }) };
      }
      // Someone else wrote it: read it again.
      this.#known.delete(s);
    }
  }

  /** Keeps a copy of a record unless the one kept is newer (an entry or a tombstone). */
  #remember(s: string, known: Deno.KvEntryMaybe<SandboxRecord> | Known): void {
    const next: Known = "entry" in known ? known : { entry: known, stamp: known.versionstamp! };
    const kept = this.#known.get(s);
    if (kept && kept.stamp > next.stamp) return;
    this.#known.delete(s); // re-inserted last: the oldest entry is the one forgotten
    this.#known.set(s, next);
    if (this.#known.size > KNOWN_RECORDS) {
      this.#known.delete(this.#known.keys().next().value!);
    }
  }

  close(): void {
    this.#kv.close();
  }
}
