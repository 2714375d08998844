/**
 * Builds a busybox OCI image layout tarball without a registry: one layer holding
 * Debian's static /bin/busybox and the applet links the tests use. Deterministic
 * (sorted, mtime 0, root-owned), so the digest is stable.
 *
 * @module
 */
import { join } from "node:path";
import { run } from "./process.ts";

export const BUSYBOX_IMAGE = "docker.io/local/busybox:latest";
/** A pause-like image: its entrypoint sleeps forever (for CRI sandboxes). */
export const PAUSE_IMAGE = "docker.io/local/pause:latest";
/** A pause image whose entrypoint exits 3 by itself after 2 s (a sandbox that dies on its own). */
export const PAUSE_EXIT3_IMAGE = "docker.io/local/pause-exit3:latest";

const BUSYBOX = "/bin/busybox";
const APPLETS = ["sh", "sleep", "true", "false", "kill", "cat", "echo", "exit"];

async function sha256File(path: string): Promise<{ digest: string; size: number }> {
  const bytes = await Deno.readFile(path);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return {
    digest: Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join(""),
    size: bytes.length,
  };
}

async function writeBlob(
  blobs: string,
  content: string,
): Promise<{ digest: string; size: number }> {
  const tmp = join(blobs, "tmp");
  await Deno.writeTextFile(tmp, content);
  const d = await sha256File(tmp);
  await Deno.rename(tmp, join(blobs, d.digest));
  return d;
}

/**
 * Writes an OCI layout tarball at `dir/NAME.tar` for each image name given; returns the
 * tar paths. Throws naming the missing file when busybox-static is not installed.
 */
export async function buildImages(
  dir: string,
  images: Array<{ name: string; entrypoint: string[] }>,
): Promise<string[]> {
  try {
    await Deno.stat(BUSYBOX);
  } catch {
    throw new Error(`${BUSYBOX} not found: install it with "apt-get install -y busybox-static"`);
  }
  const rootfs = join(dir, "rootfs");
  await Deno.mkdir(join(rootfs, "bin"), { recursive: true });
  await Deno.copyFile(BUSYBOX, join(rootfs, "bin", "busybox"));
  for (const applet of APPLETS) {
    await Deno.symlink("busybox", join(rootfs, "bin", applet)).catch(() => {});
  }
  const layerTar = join(dir, "layer.tar");
  await run("tar", [
    "--sort=name",
    "--mtime=@0",
    "--owner=0",
    "--group=0",
    "--numeric-owner",
    "-C",
    rootfs,
    "-cf",
    layerTar,
    ".",
  ]);
  const tars: string[] = [];
  for (const image of images) {
    const layout = join(dir, image.name.replace(/[^A-Za-z0-9]+/g, "_"));
    const blobs = join(layout, "blobs", "sha256");
    await Deno.mkdir(blobs, { recursive: true });
    const layer = await sha256File(layerTar);
    await Deno.copyFile(layerTar, join(blobs, layer.digest));
    const config = await writeBlob(
      blobs,
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: { Entrypoint: image.entrypoint },
        rootfs: { type: "layers", diff_ids: [`sha256:${layer.digest}`] },
      }),
    );
    const manifest = await writeBlob(
      blobs,
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: {
          mediaType: "application/vnd.oci.image.config.v1+json",
          digest: `sha256:${config.digest}`,
          size: config.size,
        },
        layers: [{
          mediaType: "application/vnd.oci.image.layer.v1.tar",
          digest: `sha256:${layer.digest}`,
          size: layer.size,
        }],
      }),
    );
    await Deno.writeTextFile(
      join(layout, "index.json"),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          digest: `sha256:${manifest.digest}`,
          size: manifest.size,
          annotations: { "io.containerd.image.name": image.name },
        }],
      }),
    );
    await Deno.writeTextFile(
      join(layout, "oci-layout"),
      JSON.stringify({ imageLayoutVersion: "1.0.0" }),
    );
    const tar = `${layout}.tar`;
    await run("tar", ["-C", layout, "-cf", tar, "oci-layout", "index.json", "blobs"]);
    tars.push(tar);
  }
  return tars;
}
