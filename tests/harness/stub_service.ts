/**
 * A SandboxService for tests of the API server's socket itself: every query fails.
 *
 * @module
 */
import { UnavailableError } from "../../src/errors.ts";
import type { SandboxService } from "../../src/server/types.ts";

export function stubService(namespace = "k8s.io"): SandboxService {
  const fail = () => Promise.reject(new UnavailableError("stub"));
  return {
    namespace,
    status: { state: "connected", since: "2026-01-01T00:00:00.000000000Z" },
    get: fail,
    list: fail,
    wait: fail,
    platform: () => ({ os: "linux", architecture: "amd64", variant: "" }),
    // deno-lint-ignore require-yield
    async *watch() {
      throw new UnavailableError("stub");
    },
    onStatusChange: () => () => {},
    createSandbox: fail,
    startSandbox: fail,
    stopSandbox: fail,
    shutdownSandbox: fail,
  };
}
