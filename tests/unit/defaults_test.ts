/**
 * Default paths: systemd's directories first, then root's system paths, then XDG/HOME.
 */
import {
  defaultSocketPath,
  defaultStateDir,
  type Env,
  SOCKET_NAME,
  SYSTEM_RUNTIME_DIR,
  SYSTEM_STATE_DIR,
} from "../../src/config/defaults.ts";
import { assertEquals } from "../harness/assert.ts";

const env = (vars: Record<string, string>): Env => (name) => vars[name];

const XDG = {
  XDG_STATE_HOME: "/home/u/.state",
  XDG_RUNTIME_DIR: "/run/user/1000",
  HOME: "/home/u",
};

Deno.test("STATE_DIRECTORY and RUNTIME_DIRECTORY win, for root and non-root alike", () => {
  const systemd = env({
    ...XDG,
    STATE_DIRECTORY: "/var/lib/agent",
    RUNTIME_DIRECTORY: "/run/agent",
  });
  for (const root of [true, false]) {
    assertEquals(defaultStateDir(systemd, root), "/var/lib/agent");
    assertEquals(defaultSocketPath(systemd, root), "/run/agent/podsandboxd.sock");
  }
});

Deno.test("of a colon-separated systemd list the first directory is used", () => {
  const systemd = env({ STATE_DIRECTORY: "/a/state:/b/state", RUNTIME_DIRECTORY: "/a/run:/b/run" });
  assertEquals(defaultStateDir(systemd, true), "/a/state");
  assertEquals(defaultSocketPath(systemd, true), "/a/run/podsandboxd.sock");
});

Deno.test("an empty systemd variable is ignored", () => {
  const empty = env({ STATE_DIRECTORY: "", RUNTIME_DIRECTORY: "" });
  assertEquals(defaultStateDir(empty, true), SYSTEM_STATE_DIR);
  assertEquals(defaultSocketPath(empty, true), `${SYSTEM_RUNTIME_DIR}/${SOCKET_NAME}`);
});

Deno.test("root gets the system paths, whatever XDG says", () => {
  assertEquals(defaultStateDir(env(XDG), true), "/var/lib/podsandboxd");
  assertEquals(defaultSocketPath(env(XDG), true), "/run/podsandboxd/podsandboxd.sock");
});

Deno.test("non-root gets the XDG paths", () => {
  assertEquals(defaultStateDir(env(XDG), false), "/home/u/.state/podsandboxd");
  assertEquals(defaultSocketPath(env(XDG), false), "/run/user/1000/podsandboxd/podsandboxd.sock");
});

Deno.test("non-root without XDG_STATE_HOME falls back to ~/.local/state", () => {
  assertEquals(
    defaultStateDir(env({ HOME: "/home/u" }), false),
    "/home/u/.local/state/podsandboxd",
  );
  assertEquals(defaultStateDir(env({}), false), "/.local/state/podsandboxd");
});

Deno.test("non-root without XDG_RUNTIME_DIR falls back to the system runtime directory", () => {
  assertEquals(
    defaultSocketPath(env({ HOME: "/home/u" }), false),
    "/run/podsandboxd/podsandboxd.sock",
  );
});
