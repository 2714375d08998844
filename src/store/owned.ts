/**
 * What the owner of a sandbox asked for when podsandboxd is its sandbox controller
 * (containerd's CRI calling Create): kept durably from Create until Shutdown, because
 * Start, Stop, Wait, Status and Shutdown carry only the id.
 *
 * Stored as JSON split into chunks under ["owned", ns, id, i] with a head entry at
 * ["owned", ns, id] — a pod's annotations alone may exceed Deno KV's 64 KiB per value.
 *
 * @module
 */
import type { SandboxKey } from "./types.ts";

/** A protobuf Any as received: its type and encoded message, kept opaque. */
export interface OpaqueAny {
  typeUrl: string;
  value: Uint8Array;
}

export interface OwnedSandbox {
  namespace: string;
  id: string;
  /** The sandboxer name the requests carry. */
  sandboxer: string;
  /** The owner's sandbox configuration (containerd's CRI: runtime.v1.PodSandboxConfig). */
  options?: OpaqueAny;
  /** The network namespace to join; empty: the host's. */
  netnsPath: string;
  annotations: Record<string, string>;
  runtime: { name: string; options?: OpaqueAny };
  labels: Record<string, string>;
  extensions: Record<string, OpaqueAny>;
  /** When Create was called (RFC 3339). */
  createdAt: string;
}

export interface OwnedSandboxStore {
  /**
   * Keeps a Create durably unless one is kept for the key already; returns what is kept
   * (the caller compares it with its request).
   */
  create(sandbox: OwnedSandbox): Promise<OwnedSandbox>;
  get(key: SandboxKey): Promise<OwnedSandbox | null>;
  /** The ids of the sandboxes kept for `namespace`. */
  ids(namespace: string): Promise<string[]>;
  /** Forgets the sandbox (Shutdown); no-op when unknown. */
  delete(key: SandboxKey): Promise<void>;
}

/** Largest stored Create, in bytes of JSON: ~1.6× Kubernetes' 256 KiB annotation cap. */
export const MAX_OWNED_BYTES = 400 * 1024;
const CHUNK_BYTES = 60 * 1024;

interface Head {
  chunks: number;
  bytes: number;
}

const headKey = (k: SandboxKey) => ["owned", k.namespace, k.id] as const;
const chunkKey = (k: SandboxKey, i: number) => ["owned", k.namespace, k.id, i] as const;

function toBase64(bytes: Uint8Array): string {
  let binary = "";
  // In slices: spreading a large array into fromCharCode overflows the stack.
  for (let i = 0; i < bytes.length; i += 8192) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  return btoa(binary);
}

/** JSON of a sandbox, Any values as base64 (JSON has no bytes). */
export function encodeOwned(sandbox: OwnedSandbox): Uint8Array {
  const text = JSON.stringify(sandbox, function (this: Record<string, unknown>, key, value) {
    // The holder's own value: a Node Buffer's toJSON has already turned `value` into
    // {type, data} by now.
    const raw = this[key];
    return raw instanceof Uint8Array ? { $bytes: toBase64(raw) } : value;
  });
  return new TextEncoder().encode(text);
}

export function decodeOwned(bytes: Uint8Array): OwnedSandbox {
  return JSON.parse(
    new TextDecoder().decode(bytes),
    (_key, value) =>
      value && typeof value === "object" && typeof value.$bytes === "string"
        ? Uint8Array.from(atob(value.$bytes), (c) => c.charCodeAt(0))
        : value,
  );
}

export class KvOwnedSandboxes implements OwnedSandboxStore {
  constructor(readonly kv: Deno.Kv) {}

  async create(sandbox: OwnedSandbox): Promise<OwnedSandbox> {
    const key = { namespace: sandbox.namespace, id: sandbox.id };
    const bytes = encodeOwned(sandbox);
    if (bytes.length > MAX_OWNED_BYTES) {
      throw new RangeError(
        `the Create request of sandbox ${sandbox.id} is ${bytes.length} bytes once stored; ` +
          `podsandboxd keeps at most ${MAX_OWNED_BYTES} (its annotations and labels are too large)`,
      );
    }
    const chunks = Math.max(1, Math.ceil(bytes.length / CHUNK_BYTES));
    for (;;) {
      const existing = await this.get(key);
      if (existing) return existing;
      const op = this.kv.atomic().check({ key: headKey(key), versionstamp: null });
      op.set(headKey(key), { chunks, bytes: bytes.length } satisfies Head);
      for (let i = 0; i < chunks; i++) {
        op.set(chunkKey(key, i), bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES));
      }
      if ((await op.commit()).ok) return sandbox;
    }
  }

  async get(key: SandboxKey): Promise<OwnedSandbox | null> {
    const head = await this.kv.get<Head>(headKey(key));
    if (head.value === null) return null;
    return await this.#read(key, head.value);
  }

  async ids(namespace: string): Promise<string[]> {
    const out: string[] = [];
    // Heads are ["owned", ns, id]; chunks have a fourth element. The ids are enough.
    for await (const entry of this.kv.list({ prefix: ["owned", namespace] })) {
      if (entry.key.length === 3) out.push(entry.key[2] as string);
    }
    return out;
  }

  async delete(key: SandboxKey): Promise<void> {
    const head = await this.kv.get<Head>(headKey(key));
    if (head.value === null) return;
    const op = this.kv.atomic().check(head).delete(headKey(key));
    for (let i = 0; i < head.value.chunks; i++) op.delete(chunkKey(key, i));
    await op.commit(); // a concurrent delete won: nothing left either way
  }

  async #read(key: SandboxKey, head: Head): Promise<OwnedSandbox> {
    const keys = Array.from({ length: head.chunks }, (_, i) => chunkKey(key, i));
    const bytes = new Uint8Array(head.bytes);
    let at = 0;
    // getMany takes at most 10 keys.
    for (let i = 0; i < keys.length; i += 10) {
      for (const entry of await this.kv.getMany<Uint8Array[]>(keys.slice(i, i + 10))) {
        if (entry.value === null) {
          throw new Error(`stored Create of sandbox ${key.namespace}/${key.id} is incomplete`);
        }
        bytes.set(entry.value, at);
        at += entry.value.length;
      }
    }
    return decodeOwned(bytes);
  }
}
