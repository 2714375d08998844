/**
 * The CLI as a user runs it (deno task podsandboxd), without containerd: help, usage
 * errors and errors that name what failed.
 */
import { assert, assertEquals, assertMatch } from "./harness/assert.ts";
import { runCli } from "./harness/agent.ts";
import { COMMANDS } from "../src/cli/main.ts";
import { BAD_OPTION_VALUES } from "./harness/bad_options.ts";

const dir = await Deno.makeTempDir({ prefix: "psd-cli-" });
// Removed when the test module ends (a "cleanup" test would count as a test that cannot fail).
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const cli = (...args: string[]) => runCli(args);

Deno.test("every command has --help (exit 0, usage on stdout)", async () => {
  for (const command of COMMANDS) {
    const res = await cli(command.name, "--help");
    assertEquals(res.code, 0, `${command.name} --help: ${res.stderr}`);
    assertMatch(res.stdout, new RegExp(`Usage: podsandboxd ${command.name}`));
  }
  const top = await cli("--help");
  assertEquals(top.code, 0);
  for (const command of COMMANDS) assertMatch(top.stdout, new RegExp(`\\n  ${command.name} `));
});

Deno.test("usage errors exit 2 and say what was wrong", async () => {
  const cases: Array<[string[], RegExp]> = [
    [[], /Usage: podsandboxd <command>/],
    [["frobnicate"], /unknown command "frobnicate"/],
    [
      ["serve", "--reap", "sometimes"],
      /--reap: invalid value "sometimes"; accepted: never, always/,
    ],
    [
      ["serve", "--reap", "always"],
      /--reap: always is refused for sandboxes selected by containerd CRI's label .* --reap-cri-sandboxes/,
    ],
    [["serve", "--resync-interval", "often"], /--resync-interval: invalid duration "often"/],
    [
      ["serve", "--state", "relative/dir"],
      /--state: invalid path "relative\/dir": an absolute path is required/,
    ],
    [["serve", "--bogus"], /Unknown option '--bogus'/],
    [["wait"], /missing sandbox ID/],
    [["wait", "a", "--timeout", "5"], /--timeout: invalid duration "5"/],
    [["status", "../etc"], /sandbox id "..\/etc" is not a valid identifier/],
    [["list", "--state", "dead"], /--state: invalid value "dead"; accepted: ready, notready/],
  ];
  for (const [args, pattern] of cases) {
    const res = await cli(...args);
    assertEquals(res.code, 2, `${args.join(" ")}: ${res.stderr}`);
    assertMatch(res.stderr, pattern, args.join(" "));
  }
});

Deno.test("a client command with no agent listening exits 1 naming the socket", async () => {
  const socket = `${dir}/agent.sock`;
  const res = await cli("wait", "sb1", "--socket", socket);
  assertEquals(res.code, 1);
  assertMatch(res.stderr, /wait for sandbox sb1: cannot reach podsandboxd at .*agent\.sock/);
});

Deno.test("version prints the agent and Deno versions", async () => {
  const res = await cli("version", "--json");
  assertEquals(res.code, 0);
  const v = JSON.parse(res.stdout);
  assertEquals(v.deno, Deno.version.deno);
  assert(/^\d+\.\d+\.\d+/.test(v.version));
});

Deno.test("every bad serve option, as a flag or a config file key, exits 2 naming it, the value and the accepted form", async () => {
  const runs = BAD_OPTION_VALUES.flatMap(([flag, value, form]) => [
    { how: "flag", args: ["config", `--${flag}=${value}`], name: `--${flag}`, value, form },
    {
      how: "file",
      file: `${flag} = ${JSON.stringify(value)}\n`,
      name: `key "${flag}"`,
      value,
      form,
    },
  ]);
  for (let i = 0; i < runs.length; i += 4) {
    await Promise.all(
      runs.slice(i, i + 4).map(async (r, j) => {
        let args = r.args;
        if (r.file !== undefined) {
          const path = `${dir}/bad-${i + j}.toml`;
          await Deno.writeTextFile(path, r.file);
          args = ["config", "--config", path];
        }
        const res = await cli(...args!);
        const what = `${r.how} ${r.name}=${JSON.stringify(r.value)}`;
        assertEquals(res.code, 2, `${what}: ${res.stderr}`);
        assert(res.stderr.includes(r.name), `${what}: names it: ${res.stderr}`);
        assert(
          res.stderr.includes(JSON.stringify(r.value)),
          `${what}: shows the value: ${res.stderr}`,
        );
        assertMatch(res.stderr, r.form, `${what}: the accepted form`);
      }),
    );
  }
});
