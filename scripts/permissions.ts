/**
 * The agent's Deno permission flags, derived from the one definition: the "agent"
 * permission set in deno.json. The deno.json tasks and `deno compile` use the set
 * directly (-P=agent); tests spawn the agent with these flags plus grants for their
 * private temporary directories.
 *
 * @module
 */

type Grant = boolean | string[];
type PermissionSet = Partial<
  Record<"read" | "write" | "net" | "env" | "sys" | "run" | "ffi", Grant>
>;

const CONFIG = new URL("../deno.json", import.meta.url);

/** The "agent" permission set as written in deno.json. */
export function agentPermissionSet(): PermissionSet {
  const config = JSON.parse(Deno.readTextFileSync(CONFIG));
  const set = config?.permissions?.agent;
  if (!set) throw new Error(`${CONFIG.pathname} has no "permissions.agent" set`);
  return set;
}

/**
 * `deno run` flags granting exactly the agent's set, plus read/write on `extra.paths`
 * (test directories outside the system paths the set names) and connect/listen on
 * `extra.sockets` (unix sockets in those directories).
 */
export function agentPermissionFlags(
  extra: { paths?: string[]; sockets?: string[] } = {},
): string[] {
  const set = agentPermissionSet();
  const flags = ["--no-prompt", "--config", CONFIG.pathname];
  const extras: Record<string, string[]> = {
    read: extra.paths ?? [],
    write: extra.paths ?? [],
    net: (extra.sockets ?? []).map((s) => `unix:${s}`),
  };
  for (const [kind, grant] of Object.entries(set) as Array<[string, Grant]>) {
    const more = extras[kind] ?? [];
    if (grant === true) flags.push(`--allow-${kind}`);
    else if (Array.isArray(grant) && grant.length + more.length > 0) {
      flags.push(`--allow-${kind}=${[...grant, ...more].join(",")}`);
    }
  }
  return flags;
}
