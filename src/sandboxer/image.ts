/**
 * The pause image as containerd holds it: its record, manifest (picked from an index for
 * this node's platform) and config, read through the images and content services, and
 * the chain ID its unpacked snapshot is committed under.
 *
 * @module
 */
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../errors.ts";
import type { CallOptions, Descriptor, SandboxRuntimeClient } from "../containerd/types.ts";
import type { ImageConfig } from "./spec.ts";

/** Manifests and configs are small; anything larger is not an image we should parse. */
const MAX_BLOB_BYTES = 4 * 1024 * 1024;

const INDEX_TYPES = new Set([
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
]);
const MANIFEST_TYPES = new Set([
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
]);

/** A resolved pause image. */
export interface SandboxImage {
  /** The image record's name (the normalised reference). */
  name: string;
  config: ImageConfig;
  /** Uncompressed layer digests, bottom first. */
  diffIds: string[];
  /** The chain ID of the top layer: the snapshot the sandbox's rootfs is prepared on. */
  chainId: string;
}

/**
 * Normalises an image reference as containerd's CRI does: "pause:3.10" is
 * "docker.io/library/pause:3.10", a reference without tag or digest gets ":latest".
 */
export function normalizeImageRef(ref: string): string {
  if (!/^[a-z0-9][a-zA-Z0-9._\-/:@]*$/.test(ref) || ref.includes("//")) {
    throw new InvalidArgumentError(`invalid image reference ${JSON.stringify(ref)}`);
  }
  let name = ref;
  const slash = name.indexOf("/");
  const first = slash < 0 ? "" : name.slice(0, slash);
  // A first component with "." or ":" (or "localhost") is a registry host.
  if (!(first.includes(".") || first.includes(":") || first === "localhost")) {
    name = `docker.io/${slash < 0 ? "library/" : ""}${name}`;
  } else if (first === "docker.io" && !name.slice(slash + 1).includes("/")) {
    name = `docker.io/library/${name.slice(slash + 1)}`;
  }
  const lastPart = name.slice(name.lastIndexOf("/") + 1);
  if (!lastPart.includes(":") && !name.includes("@")) name += ":latest";
  return name;
}

/** The chain ID of layers with these diff IDs (OCI image spec: sha256 over "parent child"). */
export async function chainId(diffIds: string[]): Promise<string> {
  if (!diffIds.length) throw new InvalidArgumentError("an image without layers has no chain ID");
  let chain = diffIds[0];
  for (const diff of diffIds.slice(1)) chain = await sha256Digest(`${chain} ${diff}`);
  return chain;
}

async function sha256Digest(data: string | Uint8Array): Promise<string> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return "sha256:" + Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Go's GOARCH of this node (Deno reports the kernel's names). */
export function goArch(arch: string = Deno.build.arch): string {
  return ({ x86_64: "amd64", aarch64: "arm64" } as Record<string, string>)[arch] ?? arch;
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (!value || typeof value !== "object" || Array.isArray(value)) {
    throw new FailedPreconditionError(`${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function strings(value: unknown, what: string): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string")) {
    throw new FailedPreconditionError(`${what} is not a list of strings`);
  }
  return value as string[];
}

function descriptor(value: unknown, what: string): Descriptor {
  const d = object(value, what);
  if (typeof d.digest !== "string" || !d.digest) {
    throw new FailedPreconditionError(`${what} has no digest`);
  }
  return {
    mediaType: typeof d.mediaType === "string" ? d.mediaType : "",
    digest: d.digest,
    size: typeof d.size === "number" ? d.size : 0,
    annotations: (d.annotations ?? {}) as Record<string, string>,
  };
}

/** Parses an OCI image config blob into what a sandbox spec takes. */
export function parseImageConfig(
  json: unknown,
  what: string,
): { config: ImageConfig; diffIds: string[] } {
  const doc = object(json, what);
  const c = doc.config === undefined || doc.config === null
    ? {}
    : object(doc.config, `${what} config`);
  const rootfs = object(doc.rootfs, `${what} rootfs`);
  const diffIds = strings(rootfs.diff_ids, `${what} rootfs.diff_ids`) ?? [];
  if (rootfs.type !== "layers" || !diffIds.length) {
    throw new FailedPreconditionError(`${what} has no layers (rootfs.diff_ids)`);
  }
  const labels = c.Labels && typeof c.Labels === "object" ? c.Labels : {};
  return {
    config: {
      env: strings(c.Env, `${what} Env`),
      entrypoint: strings(c.Entrypoint, `${what} Entrypoint`),
      cmd: strings(c.Cmd, `${what} Cmd`),
      workingDir: typeof c.WorkingDir === "string" ? c.WorkingDir : undefined,
      user: typeof c.User === "string" ? c.User : undefined,
      labels: Object.fromEntries(
        Object.entries(labels).filter(([, v]) => typeof v === "string"),
      ) as Record<string, string>,
    },
    diffIds,
  };
}

/** Picks the manifest of `os`/`arch` from an index; undefined when it has none. */
export function pickManifest(
  index: unknown,
  arch: string,
  what: string,
): Descriptor | undefined {
  const manifests = object(index, what).manifests;
  if (!Array.isArray(manifests)) throw new FailedPreconditionError(`${what} has no manifests`);
  for (const [i, m] of manifests.entries()) {
    const d = descriptor(m, `${what} manifests[${i}]`);
    const p = (m as Record<string, unknown>).platform as Record<string, unknown> | undefined;
    if (p?.os !== "linux" || p?.architecture !== arch) continue;
    // arm64's only variant is v8 (or none).
    if (arch === "arm64" && p.variant !== undefined && p.variant !== "" && p.variant !== "v8") {
      continue;
    }
    return d;
  }
  return undefined;
}

/**
 * Resolves image `name` in `namespace`. The image must be there: containerd's CRI pulls
 * the pause image (its `pinned_images.sandbox`) before it starts a sandbox.
 */
export async function resolveSandboxImage(
  client: SandboxRuntimeClient,
  namespace: string,
  name: string,
  options: CallOptions & { arch?: string } = {},
): Promise<SandboxImage> {
  const arch = options.arch ?? goArch();
  let record;
  try {
    record = await client.getImage(namespace, name, options);
  } catch (err) {
    if (!(err instanceof NotFoundError)) throw err;
    throw new FailedPreconditionError(
      `pause image ${name} is not in containerd namespace ${namespace}: containerd's CRI pulls ` +
        `it (its pinned_images.sandbox) before a pod starts; pull it with "crictl pull ${name}" ` +
        `(or "ctr -n ${namespace} images pull ${name}")`,
      { cause: err },
    );
  }
  const read = async (d: Descriptor, what: string): Promise<unknown> => {
    let bytes: Uint8Array;
    try {
      bytes = await client.readContent(namespace, d.digest, {
        ...options,
        maxBytes: MAX_BLOB_BYTES,
      });
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new FailedPreconditionError(
          `${what} ${d.digest} of image ${name} is not in containerd's content store: ` +
            `pull the image again ("crictl pull ${name}")`,
          { cause: err },
        );
      }
      if (err instanceof RangeError) throw new FailedPreconditionError(err.message, { cause: err });
      throw err;
    }
    if (d.digest.startsWith("sha256:") && await sha256Digest(bytes) !== d.digest) {
      throw new FailedPreconditionError(
        `${what} of image ${name} does not match its digest ${d.digest}`,
      );
    }
    try {
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (err) {
      throw new FailedPreconditionError(`${what} ${d.digest} of image ${name} is not JSON`, {
        cause: err,
      });
    }
  };

  let target = record.target;
  let doc = await read(target, "manifest");
  const isIndex = INDEX_TYPES.has(target.mediaType) ||
    (!MANIFEST_TYPES.has(target.mediaType) && Array.isArray(object(doc, "manifest").manifests));
  if (isIndex) {
    const picked = pickManifest(doc, arch, `index ${target.digest} of image ${name}`);
    if (!picked) {
      throw new FailedPreconditionError(
        `image ${name} has no manifest for linux/${arch}: use a pause image built for this node`,
      );
    }
    target = picked;
    doc = await read(target, "manifest");
  }
  const configDesc = descriptor(object(doc, "manifest").config, `manifest of image ${name}`);
  const parsed = parseImageConfig(await read(configDesc, "config"), `config of image ${name}`);
  return {
    name: record.name,
    config: parsed.config,
    diffIds: parsed.diffIds,
    chainId: await chainId(parsed.diffIds),
  };
}
