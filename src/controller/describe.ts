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

export function podMetadata(annotations: Record<string, string>): PodMetadata | undefined {
  const pod: PodMetadata = {};
  for (const [field, annotation] of Object.entries(POD_ANNOTATIONS)) {
    const value = annotations[annotation];
    if (value) pod[field as keyof PodMetadata] = value;
  }
  return Object.keys(pod).length > 0 ? pod : undefined;
}

export function describeContainer(container: ContainerInfo): SandboxDescription {
  const description: SandboxDescription = {
    createdAt: container.createdAt,
    labels: container.labels,
  };
  const pod = podMetadata(container.annotations);
  if (pod) description.pod = pod;
  return description;
}
