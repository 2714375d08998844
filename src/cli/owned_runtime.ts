/**
 * The controller's SandboxRuntime seam on src/sandboxer's runtime: a stored Create (the
 * CRI's PodSandboxConfig, netns path and runtime) becomes a start request.
 *
 * @module
 */
import type { SandboxRuntime } from "../controller/controller.ts";
import { decodePodSandboxConfig, type SandboxRunner } from "../sandboxer/mod.ts";

export function ownedSandboxRuntime(runner: SandboxRunner): SandboxRuntime {
  return {
    // A config that cannot be decoded is refused at Create, before anything is kept.
    check: (sandbox) => void decodePodSandboxConfig(sandbox.options),
    start: (sandbox, options) =>
      runner.start({
        id: sandbox.id,
        config: decodePodSandboxConfig(sandbox.options),
        netnsPath: sandbox.netnsPath,
        runtime: sandbox.runtime,
      }, options),
    shutdown: (sandbox, options) => runner.shutdown(sandbox.id, options),
    stopped: (sandbox) => runner.releaseShm(sandbox.id),
  };
}
