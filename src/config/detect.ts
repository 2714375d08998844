/**
 * Finding containerd when no --address is configured: the first existing socket of
 * containerd's default and the distributions' own (k3s/RKE2, microk8s, Docker), in that
 * order, as crictl tries its default endpoints. None there: the default, which the agent
 * waits for.
 *
 * @module
 */
import { DEFAULT_CONTAINERD_ADDRESS } from "./defaults.ts";

/** Where containerd listens on common nodes, in the order they are tried. */
export const CONTAINERD_SOCKET_CANDIDATES: readonly string[] = [
  DEFAULT_CONTAINERD_ADDRESS,
  // k3s and RKE2 run their own containerd here.
  "/run/k3s/containerd/containerd.sock",
  "/var/snap/microk8s/common/run/containerd.sock",
  // dockerd's own containerd (moby namespace; a Docker node without cri-dockerd).
  "/run/docker/containerd/containerd.sock",
];

/** The first candidate that is a unix socket (symlinks followed), or undefined. */
export async function detectContainerdSocket(
  candidates: readonly string[] = CONTAINERD_SOCKET_CANDIDATES,
): Promise<string | undefined> {
  for (const path of candidates) {
    try {
      if ((await Deno.stat(path)).isSocket) return path;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory) {
        continue;
      }
      throw err;
    }
  }
  return undefined;
}
