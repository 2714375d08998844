/**
 * containerd's config for a private instance, per version: format 2 (1.6, 1.7: the CRI is
 * one plugin, `io.containerd.grpc.v1.cri`) or format 3 (2.x: the CRI is split into
 * `io.containerd.cri.v1.runtime`, `io.containerd.cri.v1.images` and the gRPC service
 * `io.containerd.grpc.v1.cri`, which keeps the streaming server's settings). Pure.
 *
 * @module
 */
import { configVersion, type ContainerdVersion } from "./containerd_version.ts";

/** The CRI's settings for this machine: no cgroups, no AppArmor, pods on the node's network. */
export interface CriSettings {
  /** The pause image, under the normalised name it is stored as (docker.io/…). */
  sandboxImage: string;
  cniConfDir: string;
  cniBinDir: string;
}

export interface ContainerdConfigOptions {
  /** Private directory: root, state and opt live under it. */
  dir: string;
  /** State directory elsewhere. @default `${dir}/state` */
  state?: string;
  socket: string;
  ttrpcSocket: string;
  /** The CRI plugin on, with these settings; off when absent. */
  cri?: CriSettings;
  /** TOML appended as it is. */
  extra?: string;
}

const CRI_PLUGINS_V3 = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.runtime",
  "io.containerd.cri.v1.images",
];

function q(s: string): string {
  return JSON.stringify(s);
}

function criV2(cri: CriSettings): string[] {
  const p = `plugins."io.containerd.grpc.v1.cri"`;
  return [
    `[${p}]`,
    // Root in a container-less cgroup/AppArmor setup: let runc skip both.
    `  disable_cgroup = true`,
    `  disable_apparmor = true`,
    `  restrict_oom_score_adj = true`,
    // No TCP listener and an ephemeral streaming port: several instances may run at once.
    `  disable_tcp_service = true`,
    `  stream_server_address = "127.0.0.1"`,
    `  stream_server_port = "0"`,
    `  sandbox_image = ${q(cri.sandboxImage)}`,
    `  [${p}.cni]`,
    // Empty: pods use the node's network namespace, so no CNI plugin is ever called.
    `    conf_dir = ${q(cri.cniConfDir)}`,
    `    bin_dir = ${q(cri.cniBinDir)}`,
  ];
}

function criV3(cri: CriSettings): string[] {
  const rt = `plugins."io.containerd.cri.v1.runtime"`;
  const img = `plugins."io.containerd.cri.v1.images"`;
  return [
    `[${rt}]`,
    `  disable_cgroup = true`,
    `  disable_apparmor = true`,
    `  restrict_oom_score_adj = true`,
    `  [${rt}.containerd]`,
    `    default_runtime_name = "runc"`,
    `    [${rt}.containerd.runtimes.runc]`,
    `      runtime_type = "io.containerd.runc.v2"`,
    // containerd's own pod-sandbox controller (the default, named for the parity tests).
    `      sandboxer = "podsandbox"`,
    `  [${rt}.cni]`,
    `    bin_dirs = [${q(cri.cniBinDir)}]`,
    `    conf_dir = ${q(cri.cniConfDir)}`,
    `[${img}]`,
    `  snapshotter = "overlayfs"`,
    `  [${img}.pinned_images]`,
    `    sandbox = ${q(cri.sandboxImage)}`,
    `[plugins."io.containerd.grpc.v1.cri"]`,
    `  disable_tcp_service = true`,
    `  stream_server_address = "127.0.0.1"`,
    `  stream_server_port = "0"`,
  ];
}

/** The config file's text for `version`. */
export function containerdConfig(
  version: ContainerdVersion,
  options: ContainerdConfigOptions,
): string {
  const format = configVersion(version);
  const d = options.dir;
  const disabled = options.cri ? [] : format === 3 ? CRI_PLUGINS_V3 : ["io.containerd.grpc.v1.cri"];
  const lines = [
    `version = ${format}`,
    `root = ${q(`${d}/root`)}`,
    `state = ${q(options.state ?? `${d}/state`)}`,
    `disabled_plugins = [${disabled.map(q).join(", ")}]`,
    "[grpc]",
    `  address = ${q(options.socket)}`,
    "[ttrpc]",
    `  address = ${q(options.ttrpcSocket)}`,
    `[plugins."io.containerd.internal.v1.opt"]`,
    `  path = ${q(`${d}/opt`)}`,
  ];
  if (version !== "1.6") {
    // NRI (on by default from 2.0) listens on one fixed socket for the whole machine.
    lines.push(
      `[plugins."io.containerd.nri.v1.nri"]`,
      `  disable = true`,
      `  socket_path = ${q(`${d}/nri.sock`)}`,
    );
  }
  if (options.cri) lines.push(...(format === 3 ? criV3(options.cri) : criV2(options.cri)));
  if (options.extra) lines.push(options.extra);
  return lines.join("\n") + "\n";
}
