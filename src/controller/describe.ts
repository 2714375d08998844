/**
 * What a sandbox container tells about itself, in record terms.
 *
 * @module
 */
import type { ContainerInfo } from "../containerd/types.ts";
import type { PodMetadata, SandboxDescription } from "../store/types.ts";

/** Annotations containerd's CRI puts on a pod sandbox's OCI spec. */
export const POD_ANNOTATIONS = {
  name: "io.kubernetes.cri.sandbox-name",
  namespace: "io.kubernetes.cri.sandbox-namespace",
  uid: "io.kubernetes.cri.sandbox-uid",
} as const;

/**
 * Bounds on what a record keeps from containerd's labels: a Deno KV value is limited to
 * 64 KiB, and a container with absurd labels must not make its exit unrecordable.
 */
export const LABEL_LIMITS = { key: 256, value: 4_096, total: 16_384 } as const;
const MAX_POD_FIELD = 256;

/** Labels within LABEL_LIMITS: oversized entries are dropped, and the drop is marked. */
export function boundedLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  let total = 0;
  let dropped = 0;
  for (const key of Object.keys(labels).sort()) {
    const value = labels[key];
    const size = key.length + value.length;
    if (
      key.length > LABEL_LIMITS.key || value.length > LABEL_LIMITS.value ||
      total + size > LABEL_LIMITS.total
    ) {
      dropped++;
      continue;
    }
    out[key] = value;
    total += size;
  }
  if (dropped > 0) out["podsandboxd.io/labels-dropped"] = String(dropped);
  return out;
}

export function podMetadata(annotations: Record<string, string>): PodMetadata | undefined {
  const pod: PodMetadata = {};
  for (const [field, annotation] of Object.entries(POD_ANNOTATIONS)) {
    const value = annotations[annotation];
    if (value) pod[field as keyof PodMetadata] = value.slice(0, MAX_POD_FIELD);
  }
  return Object.keys(pod).length > 0 ? pod : undefined;
}

export function describeContainer(container: ContainerInfo): SandboxDescription {
  const description: SandboxDescription = {
    createdAt: container.createdAt,
    labels: boundedLabels(container.labels),
  };
  const pod = podMetadata(container.annotations);
  if (pod) description.pod = pod;
  // containerd 1.7+'s sandbox store: which sandbox controller owns it.
  if (container.sandboxer) description.sandboxer = container.sandboxer.slice(0, MAX_POD_FIELD);
  return description;
}
