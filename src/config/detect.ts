/**
 * Finding containerd when no --address is configured: the first existing socket of
 * containerd's default and the distributions' own (k3s/RKE2, microk8s, Docker), in that
 * order, as crictl tries its default endpoints. None there: the default, which the agent
 * waits for.
 *
 * @module
 */
import {
  DEFAULT_CONTAINERD_ADDRESS,
  DEFAULT_CONTAINERD_ROOT,
  DEFAULT_CONTAINERD_STATE,
} from "./defaults.ts";

/** Where a distribution's containerd keeps its socket and its state directory. */
export interface ContainerdLayout {
  socket: string;
  /** containerd's `state` (task bundles with their shims' addresses). */
  state: string;
  /** containerd's `root` (the CRI keeps sandboxes' hostname, hosts, resolv.conf there). */
  root: string;
}

/** containerd's own layout and the distributions', in the order their sockets are tried. */
export const CONTAINERD_LAYOUTS: readonly ContainerdLayout[] = [
  {
    socket: DEFAULT_CONTAINERD_ADDRESS,
    state: DEFAULT_CONTAINERD_STATE,
    root: DEFAULT_CONTAINERD_ROOT,
  },
  // k3s and RKE2 run their own containerd here.
  {
    socket: "/run/k3s/containerd/containerd.sock",
    state: "/run/k3s/containerd",
    root: "/var/lib/rancher/k3s/agent/containerd",
  },
  {
    socket: "/var/snap/microk8s/common/run/containerd.sock",
    state: "/var/snap/microk8s/common/run/containerd",
    root: "/var/snap/microk8s/common/var/lib/containerd",
  },
  // dockerd's own containerd (moby namespace; a Docker node without cri-dockerd).
  {
    socket: "/run/docker/containerd/containerd.sock",
    state: "/run/docker/containerd/daemon",
    root: "/var/lib/docker/containerd/daemon",
  },
];

/** Where containerd listens on common nodes, in the order they are tried. */
export const CONTAINERD_SOCKET_CANDIDATES: readonly string[] = CONTAINERD_LAYOUTS.map((l) =>
  l.socket
);

/** The known layout whose containerd listens at `socket` (also spelled /var/run/…). */
export function layoutFor(socket: string): ContainerdLayout | undefined {
  const path = socket.startsWith("/var/run/") ? socket.slice("/var".length) : socket;
  return CONTAINERD_LAYOUTS.find((l) => l.socket === path);
}

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
