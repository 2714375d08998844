/**
 * The node's platform in OCI/containerd terms (what containerd's `platforms.DefaultSpec`
 * reports), derived from the Deno build.
 *
 * @module
 */

export interface Platform {
  os: string;
  architecture: string;
  variant: string;
}

const ARCHITECTURES: Record<string, { architecture: string; variant: string }> = {
  x86_64: { architecture: "amd64", variant: "" },
  aarch64: { architecture: "arm64", variant: "v8" },
};

export function nodePlatform(build: { os: string; arch: string } = Deno.build): Platform {
  const arch = ARCHITECTURES[build.arch] ?? { architecture: build.arch, variant: "" };
  return { os: build.os, ...arch };
}
