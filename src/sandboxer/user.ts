/**
 * The sandbox process's user, as containerd's CRI picks it: run_as_user/run_as_group of
 * the pod's security context, else the image's USER; names and a bare uid's group are
 * looked up in the image's /etc/passwd and /etc/group. Pure: the caller reads the files.
 *
 * @module
 */
import { InvalidArgumentError } from "../errors.ts";
import type { Int64Value } from "../gen/cri/runtime/v1/api.ts";

/** runc's limit on ids (it needs them to fit an int32). */
const MAX_ID = 2 ** 31 - 1;

/**
 * The user string of the sandbox: "uid", "uid:gid" from the security context, else the
 * image's USER; "" when neither names one. A group without a user is refused.
 */
export function sandboxUserString(
  runAsUser: Int64Value | undefined,
  runAsGroup: Int64Value | undefined,
  imageUser: string | undefined,
): string {
  if (!runAsUser) {
    if (runAsGroup) {
      throw new InvalidArgumentError(
        `run_as_group ${runAsGroup.value} is set without run_as_user: set both, or neither`,
      );
    }
    return imageUser ?? "";
  }
  return runAsGroup ? `${runAsUser.value}:${runAsGroup.value}` : `${runAsUser.value}`;
}

/** True when resolving `user` needs the image's /etc/passwd or /etc/group. */
export function needsUserFiles(user: string): boolean {
  if (user === "") return false;
  const parts = user.split(":");
  // A bare uid takes its group from /etc/passwd; names need the files too.
  return parts.length === 1 || parts.some((p) => !/^\d+$/.test(p));
}

/** The contents of the image's user files; undefined when the image has none. */
export interface UserFiles {
  passwd?: string;
  group?: string;
}

/** A line of /etc/passwd (name, uid, gid) or /etc/group (name, gid). */
interface Entry {
  name: string;
  id: number;
  /** The user's primary group (passwd only). */
  gid: number;
}

/** Entries of passwd ("name:x:uid:gid:…") or group ("name:x:gid:members") text. */
function parseEntries(text: string | undefined): Entry[] {
  const out: Entry[] = [];
  for (const line of (text ?? "").split("\n")) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length < 3 || !/^\d+$/.test(f[2])) continue;
    const gid = /^\d+$/.test(f[3] ?? "") ? Number(f[3]) : 0;
    out.push({ name: f[0], id: Number(f[2]), gid });
  }
  return out;
}

function parseId(text: string, what: string, user: string): number | undefined {
  if (!/^\d+$/.test(text)) return undefined;
  const n = Number(text);
  if (n > MAX_ID) {
    throw new InvalidArgumentError(`invalid user ${JSON.stringify(user)}: ${what} out of range`);
  }
  return n;
}

/** uid and gid of `user`; undefined for "" (the spec's default root user stays). */
export function resolveUser(
  user: string,
  files: UserFiles,
): { uid: number; gid: number } | undefined {
  if (user === "") return undefined;
  const parts = user.split(":");
  const passwd = () => parseEntries(files.passwd);
  const noFile = (file: string) =>
    new InvalidArgumentError(
      `user ${JSON.stringify(user)} needs the image's ${file}, which it does not have`,
    );
  if (parts.length === 1) {
    const uid = parseId(parts[0], "uid", user);
    if (uid !== undefined) {
      // A uid without a passwd entry runs with group 0.
      const entry = passwd().find((e) => e.id === uid);
      return { uid, gid: entry?.gid ?? 0 };
    }
    if (files.passwd === undefined) throw noFile("/etc/passwd");
    const entry = passwd().find((e) => e.name === parts[0]);
    if (!entry) {
      throw new InvalidArgumentError(
        `user ${JSON.stringify(user)} is not in the image's /etc/passwd`,
      );
    }
    return { uid: entry.id, gid: entry.gid };
  }
  if (parts.length !== 2) {
    throw new InvalidArgumentError(`invalid user ${JSON.stringify(user)}: expected user[:group]`);
  }
  let uid = parseId(parts[0], "uid", user);
  let gid = parseId(parts[1], "gid", user);
  if (uid === undefined) {
    if (files.passwd === undefined) throw noFile("/etc/passwd");
    const entry = passwd().find((e) => e.name === parts[0]);
    if (!entry) {
      throw new InvalidArgumentError(
        `user ${JSON.stringify(parts[0])} is not in the image's /etc/passwd`,
      );
    }
    uid = entry.id;
  }
  if (gid === undefined) {
    if (files.group === undefined) throw noFile("/etc/group");
    const entry = parseEntries(files.group).find((e) => e.name === parts[1]);
    if (!entry) {
      throw new InvalidArgumentError(
        `group ${JSON.stringify(parts[1])} is not in the image's /etc/group`,
      );
    }
    gid = entry.id;
  }
  return { uid, gid };
}
