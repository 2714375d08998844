/**
 * Mounts on the node (the sandbox's shm tmpfs; a read-only look into its rootfs). Deno
 * has no mount(2), so the default implementation runs util-linux's `mount`/`umount`;
 * the interface lets tests count or fail mounts.
 *
 * @module
 */
import { FailedPreconditionError } from "../errors.ts";
import { readProcSelf } from "./proc_self.ts";

export interface MountSpec {
  type: string;
  source: string;
  target: string;
  options: string[];
}

export interface HostMounts {
  mount(m: MountSpec): Promise<void>;
  /** Unmounts everything mounted at or below `path`, deepest first; nothing there is fine. */
  unmountAll(path: string): Promise<void>;
  /** Mount points at or below `path`. */
  mountsUnder(path: string): Promise<string[]>;
}

/** Decodes mountinfo's octal escapes ("\040" is a space). */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below `path` in a mountinfo text, deepest first. */
export function mountPointsUnder(mountinfo: string, path: string): string[] {
  const root = path.replace(/\/+$/, "") || "/";
  const out = new Set<string>();
  for (const line of mountinfo.split("\n")) {
    const field = line.split(" ")[4];
    if (!field) continue;
    const point = unescapeMountPath(field);
    if (point === root || point.startsWith(root === "/" ? "/" : root + "/")) out.add(point);
  }
  return [...out].sort((a, b) => b.length - a.length);
}

async function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    return { code: out.code, stderr: new TextDecoder().decode(out.stderr).trim() };
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new FailedPreconditionError(
        `${cmd} not found: podsandboxd mounts with util-linux (apt-get install mount)`,
        { cause: err },
      );
    }
    throw err;
  }
}

/** Mounts with util-linux's mount(8) and umount(8); needs root (CAP_SYS_ADMIN). */
export class UtilLinuxMounts implements HostMounts {
  async mount(m: MountSpec): Promise<void> {
    const args = ["-t", m.type];
    if (m.options.length) args.push("-o", m.options.join(","));
    const { code, stderr } = await run("mount", [...args, "--", m.source, m.target]);
    if (code !== 0) {
      throw new FailedPreconditionError(
        `mount -t ${m.type} ${m.source} ${m.target} failed (exit ${code}): ${stderr}`,
      );
    }
  }

  async mountsUnder(path: string): Promise<string[]> {
    let real = path;
    try {
      real = await Deno.realPath(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    const mountinfo = await readProcSelf("mountinfo");
    if (mountinfo === undefined) {
      throw new FailedPreconditionError("cannot read the mount table (cat /proc/self/mountinfo)");
    }
    return mountPointsUnder(mountinfo, real);
  }

  async unmountAll(path: string): Promise<void> {
    // Stacked mounts on one point show up once per layer: repeat until none is left.
    for (let round = 0; round < 16; round++) {
      const points = await this.mountsUnder(path);
      if (!points.length) return;
      for (const point of points) {
        let { code, stderr } = await run("umount", ["--", point]);
        // A mount still in use elsewhere is detached instead (as containerd's cleanup does).
        if (code !== 0 && /busy/i.test(stderr)) {
          ({ code, stderr } = await run("umount", ["-l", "--", point]));
        }
        if (code !== 0 && !/not mounted|no mount point/i.test(stderr)) {
          throw new FailedPreconditionError(`umount ${point} failed (exit ${code}): ${stderr}`);
        }
      }
    }
    throw new FailedPreconditionError(`mounts under ${path} keep coming back after 16 unmounts`);
  }
}
