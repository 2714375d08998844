/**
 * Before serving (or calling the agent): do this process's Deno permissions cover every
 * path and socket of its configuration? One clear error listing what is missing and the
 * fix — instead of a failure deep inside a library at the first use.
 *
 * @module
 */
import { grantFor } from "../permissions/compile.ts";
import {
  addAccess,
  descriptorOf,
  permissionFlags,
  type PermissionSet,
} from "../permissions/flags.ts";
import { type Access, accessesOf, type Need } from "../permissions/needs.ts";

/** The configuration needs a permission the process was not granted (exit 2). */
export class MissingPermissionError extends Error {
  override name = "MissingPermissionError";
}

export interface Missing {
  need: Need;
  accesses: Access[];
}

type Query = (descriptor: Deno.PermissionDescriptor) => Deno.PermissionState;
const queryProcess: Query = (d) => Deno.permissions.querySync(d).state;

/** The needs whose accesses are not all granted, with those accesses. */
export function missingPermissions(needs: readonly Need[], query: Query = queryProcess): Missing[] {
  const missing: Missing[] = [];
  for (const need of needs) {
    const accesses = accessesOf(need).filter((a) => query(descriptorOf(a)) !== "granted");
    if (accesses.length > 0) missing.push({ need, accesses });
  }
  return missing;
}

function describeAccess(access: Access): string {
  switch (access.name) {
    case "net":
      return `net ${access.host ?? "(any host)"}`;
    case "run":
      return `run ${access.command}`;
    case "sys":
      return `sys ${access.info}`;
    default:
      return `${access.name} ${access.path}`;
  }
}

function target(need: Need): string {
  switch (need.kind) {
    case "tcp":
      return `${need.host}${need.port ? `:${need.port}` : ""}`;
    case "run":
      return need.command;
    case "sys":
      return need.info;
    default:
      return need.path;
  }
}

/**
 * The message for missing permissions: what is missing, for which option, and the fix —
 * a compiled binary is rebuilt with `deno task compile --grant …`; from source, the
 * launcher (`deno task podsandboxd`) grants what the configuration names.
 */
export function permissionProblem(missing: readonly Missing[], compiled: boolean): string {
  const lines = missing.map(({ need, accesses }) =>
    `  ${need.why} ${target(need)}: ${accesses.map(describeAccess).join(", ")}`
  );
  const accesses = missing.flatMap((m) => m.accesses);
  if (compiled) {
    const grants = [...new Set(accesses.map(grantFor))];
    const fix = grants.filter((g) => g !== undefined).map((g) => `--grant ${g}`).join(" ");
    const sandboxer = accesses.some((a) => a.name === "run" || a.name === "sys");
    return "this binary's Deno permissions (fixed when it was compiled) do not cover this " +
      `configuration:\n${lines.join("\n")}\n` +
      `Build one that does, with the site's paths granted: deno task compile ${
        sandboxer ? "--sandboxer " : ""
      }${fix}` +
      (grants.includes(undefined) && !sandboxer
        ? " (net to any host cannot be granted by --grant)"
        : "");
  }
  const set: PermissionSet = { read: [], write: [], net: [], env: [], sys: [], run: [] };
  for (const access of accesses) addAccess(set, access);
  const flags = permissionFlags(set).filter((f) => f !== "--no-prompt").join(" ");
  return "the process's Deno permissions do not cover this configuration:\n" +
    `${lines.join("\n")}\n` +
    "Run it through deno task podsandboxd (or deno task start): the launcher grants what the " +
    `configuration names. Run with deno run by hand, it needs: ${flags}`;
}

/** Throws MissingPermissionError when a need is not granted. */
export function checkPermissions(needs: readonly Need[], query: Query = queryProcess): void {
  const missing = missingPermissions(needs, query);
  if (missing.length > 0) {
    throw new MissingPermissionError(permissionProblem(missing, Deno.build.standalone));
  }
}
