/**
 * The CRI's PodSandboxConfig as a sandbox controller receives it: Create's `options`,
 * an Any of type URL "runtime.v1.PodSandboxConfig" (containerd sends it without the
 * "type.googleapis.com/" prefix).
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import { PodSandboxConfig } from "../gen/cri/runtime/v1/api.ts";

export const POD_SANDBOX_CONFIG_TYPE = "runtime.v1.PodSandboxConfig";

/** Decodes Create's options; InvalidArgumentError for another type or bad bytes. */
export function decodePodSandboxConfig(
  options: { typeUrl: string; value: Uint8Array } | undefined,
): PodSandboxConfig {
  if (!options) {
    throw new InvalidArgumentError("no options: expected a runtime.v1.PodSandboxConfig");
  }
  const type = options.typeUrl.slice(options.typeUrl.lastIndexOf("/") + 1);
  if (type !== POD_SANDBOX_CONFIG_TYPE) {
    throw new InvalidArgumentError(
      `options of type ${JSON.stringify(options.typeUrl)}: expected ${POD_SANDBOX_CONFIG_TYPE}`,
    );
  }
  try {
    return PodSandboxConfig.decode(options.value);
  } catch (err) {
    throw new InvalidArgumentError(
      `options are not a valid ${POD_SANDBOX_CONFIG_TYPE}: ${
        err instanceof Error ? err.message : err
      }`,
      { cause: err },
    );
  }
}

/** Encodes a PodSandboxConfig as containerd's CRI sends it. */
export function encodePodSandboxConfig(
  config: PodSandboxConfig,
): { typeUrl: string; value: Uint8Array } {
  return { typeUrl: POD_SANDBOX_CONFIG_TYPE, value: PodSandboxConfig.encode(config).finish() };
}
