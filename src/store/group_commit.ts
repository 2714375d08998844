/**
 * Group commit for Deno KV: versionstamp-checked writes that arrive while a commit is in
 * flight share the next atomic commit, instead of paying one commit (one SQLite
 * transaction and its sync) each. A write that finds the store idle is committed at the
 * end of the current turn of the event loop (setImmediate: ~10 µs; a zero-delay timer
 * fires ~2 ms later in Deno 2.9), with every write made in that turn: the exits of one
 * read from containerd's event stream share the first commit instead of all but one
 * waiting for a commit of one. A lone write waits for nothing else.
 *
 * Each write stays all-or-nothing with its check: a group commits only if every check in
 * it holds; if one does not (a concurrent writer) or the group is refused (KV's limits),
 * its writes are committed one by one, so only the stale one reports a conflict. Two
 * writes of the same sandbox never share a group: the second, computed from what the
 * first replaces, must see the first's result (its check then fails and it is re-read).
 * A write's promise settles only after the commit that holds it: durable when it resolves.
 *
 * @module
 */
import { setImmediate } from "node:timers";

export interface CheckedWrite {
  /** What the write is about (a sandbox): writes of one subject never share a commit. */
  subject: string;
  /** Checks, then mutations, of this write. */
  build(op: Deno.AtomicOperation): void;
}

export interface GroupCommitOptions {
  /**
   * Writes per commit. Deno KV allows 100 checks and 1000 mutations per atomic
   * operation; the store's writes have one check and at most two mutations each (a
   * group over a limit is committed write by write).
   * @default 100
   */
  maxWrites?: number;
  /** Called with the duration of each atomic commit, in seconds (metrics). */
  onCommit?: (seconds: number) => void;
  /**
   * Called after each commit that succeeded with the subjects it held and when it ran
   * (wall-clock ms; exit tracing).
   */
  onGroup?: (subjects: string[], startedAt: number, endedAt: number) => void;
}

interface Entry {
  write: CheckedWrite;
  resolve(versionstamp: string | null): void;
  reject(err: unknown): void;
}

export class GroupCommitter {
  readonly #kv: Deno.Kv;
  readonly #maxWrites: number;
  readonly #onCommit?: (seconds: number) => void;
  readonly #onGroup?: GroupCommitOptions["onGroup"];
  #queue: Entry[] = [];
  /** A commit is in flight, or one is due at the end of the turn. */
  #running = false;

  constructor(kv: Deno.Kv, options: GroupCommitOptions = {}) {
    this.#kv = kv;
    this.#maxWrites = options.maxWrites ?? 100;
    this.#onCommit = options.onCommit;
    this.#onGroup = options.onGroup;
  }

  /**
   * Commits `write` (alone or with others); resolves with the commit's versionstamp once
   * it is committed, null when one of its checks failed (nothing of it was written).
   * Rejects when KV fails.
   */
  commit(write: CheckedWrite): Promise<string | null> {
    const { promise, resolve, reject } = Promise.withResolvers<string | null>();
    this.#queue.push({ write, resolve, reject });
    if (!this.#running) {
      this.#running = true;
      setImmediate(() => this.#run());
    }
    return promise;
  }

  async #run(): Promise<void> {
    try {
      while (this.#queue.length > 0) await this.#commitGroup(this.#take());
    } finally {
      this.#running = false;
    }
  }

  /** The next group: queued writes in order, at most one per subject, up to maxWrites. */
  #take(): Entry[] {
    const group: Entry[] = [];
    const skipped: Entry[] = [];
    const subjects = new Set<string>();
    let i = 0;
    for (; i < this.#queue.length && group.length < this.#maxWrites; i++) {
      const entry = this.#queue[i];
      if (subjects.has(entry.write.subject)) {
        skipped.push(entry);
      } else {
        subjects.add(entry.write.subject);
        group.push(entry);
      }
    }
    this.#queue = skipped.length === 0 && i === this.#queue.length
      ? []
      : [...skipped, ...this.#queue.slice(i)];
    return group;
  }

  async #commitGroup(group: Entry[]): Promise<void> {
    if (group.length === 1) return await this.#commitOne(group[0]);
    const op = this.#kv.atomic();
    for (const entry of group) entry.write.build(op);
    try {
      const versionstamp = await this.#timed(op, group);
      if (versionstamp !== null) {
        for (const entry of group) entry.resolve(versionstamp);
        return;
      }
    } catch {
      // Refused as a whole (e.g. over KV's size limit): each write on its own below.
    }
    // A failed check fails the whole group: commit each on its own, so only it fails.
    await Promise.all(group.map((entry) => this.#commitOne(entry)));
  }

  async #commitOne(entry: Entry): Promise<void> {
    const op = this.#kv.atomic();
    entry.write.build(op);
    try {
      entry.resolve(await this.#timed(op, [entry]));
    } catch (err) {
      entry.reject(err);
    }
  }

  async #timed(op: Deno.AtomicOperation, group: Entry[]): Promise<string | null> {
    const started = performance.now();
    const result = await op.commit();
    const ended = performance.now();
    this.#onCommit?.((ended - started) / 1000);
    if (this.#onGroup && result.ok) {
      const origin = performance.timeOrigin;
      this.#onGroup(group.map((e) => e.write.subject), origin + started, origin + ended);
    }
    return result.ok ? result.versionstamp : null;
  }
}
