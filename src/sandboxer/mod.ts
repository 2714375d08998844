/**
 * Running and removing pod sandboxes in containerd, as containerd's own `podsandbox`
 * controller does (its Start and Shutdown): the adapter a sandbox controller calls. No
 * policy here: `SandboxRunner` is the seam the controller depends on.
 *
 * @module
 */
export {
  CRI_KIND_LABEL,
  DEFAULT_KILL_TIMEOUT_MS,
  DEFAULT_NAMESPACE,
  DEFAULT_SNAPSHOTTER,
  OWNED_LABEL,
  sandboxLabels,
  SandboxRuntime,
} from "./runtime.ts";
export type {
  SandboxRunner,
  SandboxRuntimeOptions,
  StartedSandbox,
  StartSandboxRequest,
} from "./runtime.ts";
export { buildSandboxSpec, cgroupsPath, CRI_ANNOTATIONS } from "./spec.ts";
export type { ImageConfig, SandboxHost, SandboxSpecInput } from "./spec.ts";
export type { OciSpec } from "./oci.ts";
export { criDirs, sandboxPaths } from "./files.ts";
export type { CriDirs, NodeFiles, SandboxPaths } from "./files.ts";
export { chainId, normalizeImageRef, resolveSandboxImage } from "./image.ts";
export type { SandboxImage } from "./image.ts";
export { UtilLinuxMounts } from "./mounts.ts";
export type { HostMounts, MountSpec } from "./mounts.ts";
export {
  decodePodSandboxConfig,
  encodePodSandboxConfig,
  POD_SANDBOX_CONFIG_TYPE,
} from "./pod_config.ts";
