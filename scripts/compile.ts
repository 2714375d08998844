/**
 * `deno task compile`: builds dist/podsandboxd with its Deno permissions baked in: the
 * standard layout, the containerd sockets of k3s/RKE2, microk8s and Docker, and each
 * `--grant PATH` (a site's own paths; src/permissions/compile.ts).
 *
 * `deno compile` needs the `denort` runtime of the same Deno version. It honours
 * DENORT_BIN (a path to that binary); otherwise Deno downloads it from dl.deno.land,
 * which some machines cannot reach. Either way, failure ends with one clear message.
 *
 * `--sandboxer` also bakes what running pod sandboxes takes (serve --sandboxer): the CRI's
 * sandbox directories of each layout, mount/umount, the node's hostname and kernel release.
 *
 * Usage: deno task compile [--output PATH] [--sandboxer] [--grant PATH|HOST[:PORT]]...
 */
import { parseArgs } from "node:util";
import { compileArgs, grantNeeds } from "../src/permissions/compile.ts";
import { stampBuildInfo } from "./build_info.ts";

const USAGE =
  "usage: deno task compile [--output PATH] [--sandboxer] [--grant PATH|HOST[:PORT]]...";
const root = new URL("..", import.meta.url).pathname;

function fail(message: string, code = 1): never {
  console.error(`compile: ${message}`);
  Deno.exit(code);
}

let values;
try {
  values = parseArgs({
    args: Deno.args,
    options: {
      output: { type: "string", default: `${root}dist/podsandboxd` },
      grant: { type: "string", multiple: true, default: [] },
      sandboxer: { type: "boolean", default: false },
    },
  }).values;
  for (const grant of values.grant) grantNeeds(grant);
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`, 2);
}

const version = Deno.version.deno;
const denortUrl = `https://dl.deno.land/release/v${version}/denort-${Deno.build.target}.zip`;
const denortBin = Deno.env.get("DENORT_BIN");
if (denortBin !== undefined) {
  try {
    const info = await Deno.stat(denortBin);
    if (!info.isFile || (info.mode !== null && (info.mode & 0o111) === 0)) {
      fail(`DENORT_BIN=${denortBin} is not an executable file`);
    }
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      fail(
        `DENORT_BIN=${denortBin} does not exist; point it at the denort ${version} binary ` +
          `(unzipped from ${denortUrl})`,
      );
    }
    throw err;
  }
}

// Stamp the commit into the binary; the source file is restored whatever happens.
const buildInfo = new URL("../src/build_info.ts", import.meta.url);
const original = await Deno.readTextFile(buildInfo);
const git = await new Deno.Command("git", {
  args: ["-C", root, "rev-parse", "HEAD"],
  stdout: "piped",
  stderr: "null",
})
  .output().catch(() => undefined);
const commit = git?.success ? new TextDecoder().decode(git.stdout).trim() : undefined;
const dirty = commit
  ? (await new Deno.Command("git", { args: ["-C", root, "status", "--porcelain"], stdout: "piped" })
    .output())
    .stdout.length > 0
  : false;
let stamped: string;
try {
  stamped = stampBuildInfo(original, {
    commit: commit ? `${commit}${dirty ? "-dirty" : ""}` : undefined,
    builtAt: new Date().toISOString(),
  });
} catch (err) {
  fail((err as Error).message);
}
await Deno.writeTextFile(buildInfo, stamped);

const args = compileArgs({
  root,
  output: values.output,
  grants: values.grant,
  sandboxer: values.sandboxer,
});
let out: Deno.CommandOutput;
try {
  out = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "inherit",
    stderr: "piped",
  }).output();
} finally {
  await Deno.writeTextFile(buildInfo, original);
}
const stderr = new TextDecoder().decode(out.stderr);
if (!out.success) {
  if (/denort|dl\.deno\.land|error sending request/i.test(stderr) && denortBin === undefined) {
    fail(
      `deno compile needs the denort ${version} runtime and could not download it ` +
        `(${denortUrl}). Download and unzip it where this machine can, then run ` +
        `DENORT_BIN=/path/to/denort deno task compile.\n` +
        stderr.split("\n").filter((l) => /error|Caused by|\d: /.test(l)).slice(0, 4).join("\n"),
    );
  }
  fail(`deno ${args.join(" ")} failed:\n${stderr}`);
}
console.error(
  `compile: wrote ${values.output} (Deno ${version}; granted the standard layout, k3s/RKE2, ` +
    `microk8s and Docker containerd sockets${
      values.grant.length ? `, ${values.grant.join(", ")}` : ""
    })`,
);
