/**
 * Default paths and values. Paths follow systemd first ($STATE_DIRECTORY,
 * $RUNTIME_DIRECTORY from the unit), then the system locations for root, then the XDG
 * locations for other users.
 *
 * @module
 */
import { join } from "node:path";

export const DEFAULT_CONTAINERD_ADDRESS = "/run/containerd/containerd.sock";
/** containerd's default `root` directory. */
export const DEFAULT_CONTAINERD_ROOT = "/var/lib/containerd";
/** The pause image containerd 2.1's CRI pins by default (`pinned_images.sandbox`). */
export const DEFAULT_PAUSE_IMAGE = "registry.k8s.io/pause:3.10";
/** containerd's default `state` directory (task bundles, shim addresses). */
export const DEFAULT_CONTAINERD_STATE = "/run/containerd";
/**
 * Where every stock containerd build puts its shims' sockets, whatever its `state`
 * setting (a compile-time default in containerd's shim code).
 */
export const SHIM_SOCKET_DIR = "/run/containerd/s";
/** Under containerd's state directory: a directory per namespace/task, naming its shim. */
export const TASK_BUNDLES_DIR = "io.containerd.runtime.v2.task";
/** Under containerd's root and state directories: the CRI plugin's (sandbox files). */
export const CRI_PLUGIN_DIR = "io.containerd.grpc.v1.cri";
/** containerd's CRI keeps pods in this namespace. */
export const DEFAULT_NAMESPACE = "k8s.io";
/** The label containerd's CRI puts on every pod sandbox container. */
export const DEFAULT_SANDBOX_FILTER = 'labels."io.cri-containerd.kind"==sandbox';
export const SYSTEM_STATE_DIR = "/var/lib/podsandboxd";
export const SYSTEM_RUNTIME_DIR = "/run/podsandboxd";
export const SOCKET_NAME = "podsandboxd.sock";

/** Reads environment variables; tests pass a plain object. */
export type Env = (name: string) => string | undefined;

export const processEnv: Env = (name) => Deno.env.get(name);

/** Who runs the agent: root gets the system paths. */
export function isRoot(): boolean {
  return Deno.uid() === 0;
}

/** First path of a colon-separated systemd directory list. */
function firstOf(list: string | undefined): string | undefined {
  const first = list?.split(":")[0];
  return first ? first : undefined;
}

export function defaultStateDir(env: Env = processEnv, root = isRoot()): string {
  const systemd = firstOf(env("STATE_DIRECTORY"));
  if (systemd) return systemd;
  if (root) return SYSTEM_STATE_DIR;
  const xdg = env("XDG_STATE_HOME");
  if (xdg) return join(xdg, "podsandboxd");
  return join(env("HOME") ?? "/", ".local", "state", "podsandboxd");
}

/** The agent's socket a client uses: the one given (--socket), else the default. */
export function clientSocketPath(given: string | undefined, env: Env = processEnv): string {
  return given ?? defaultSocketPath(env);
}

export function defaultSocketPath(env: Env = processEnv, root = isRoot()): string {
  const systemd = firstOf(env("RUNTIME_DIRECTORY"));
  if (systemd) return join(systemd, SOCKET_NAME);
  if (root) return join(SYSTEM_RUNTIME_DIR, SOCKET_NAME);
  const xdg = env("XDG_RUNTIME_DIR");
  if (xdg) return join(xdg, "podsandboxd", SOCKET_NAME);
  return join(SYSTEM_RUNTIME_DIR, SOCKET_NAME);
}
