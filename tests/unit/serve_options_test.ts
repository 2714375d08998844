/**
 * `podsandboxd serve` options: defaults, parsing, and errors that name flag, value and form.
 */
import {
  resolveServeConfig,
  SERVE_OPTIONS,
  serveParseConfig,
} from "../../src/config/serve_options.ts";
import type { Env } from "../../src/config/defaults.ts";
import { assert, assertEquals, assertThrows } from "../harness/assert.ts";

/** An environment that fixes both default paths, whoever runs the test. */
const ENV: Env = (name) =>
  ({ STATE_DIRECTORY: "/srv/state", RUNTIME_DIRECTORY: "/srv/run" } as Record<string, string>)[
    name
  ];

Deno.test("without flags every option has its default, with source 'default'", () => {
  const { config, sources } = resolveServeConfig({}, ENV);
  assertEquals(config, {
    address: "/run/containerd/containerd.sock",
    namespace: "k8s.io",
    filters: ['labels."io.cri-containerd.kind"==sandbox'],
    state: "/srv/state",
    socket: "/srv/run/podsandboxd.sock",
    reap: "never",
    reapCriSandboxes: false,
    resyncInterval: 60_000,
    events: "stream",
    pollInterval: 1_000,
    logLevel: "info",
    logFormat: "auto",
  });
  assertEquals(Object.keys(sources).sort(), Object.keys(config).sort());
  for (const [k, source] of Object.entries(sources)) assertEquals(source, "default", k);
});

Deno.test("every flag parses, and its source becomes 'flag'", () => {
  const { config, sources } = resolveServeConfig({
    address: "unix:///var/run/ctrd.sock",
    namespace: "moby",
    filter: ["labels.role==pod", 'id=="x"'],
    state: "/data/state",
    socket: "/tmp/agent.sock",
    reap: "always",
    "reap-cri-sandboxes": true,
    "resync-interval": "1m30s",
    events: "poll",
    "poll-interval": "250ms",
    "log-level": "debug",
    "log-format": "json",
  }, ENV);
  assertEquals(config, {
    address: "/var/run/ctrd.sock",
    namespace: "moby",
    filters: ["labels.role==pod", 'id=="x"'],
    state: "/data/state",
    socket: "/tmp/agent.sock",
    reap: "always",
    reapCriSandboxes: true,
    resyncInterval: 90_000,
    events: "poll",
    pollInterval: 250,
    logLevel: "debug",
    logFormat: "json",
  });
  for (const [k, source] of Object.entries(sources)) assertEquals(source, "flag", k);
});

Deno.test("a plain absolute address and a resync interval of 0 are accepted", () => {
  const { config, sources } = resolveServeConfig(
    { address: "/run/k3s/containerd/containerd.sock", "resync-interval": "0" },
    ENV,
  );
  assertEquals(config.address, "/run/k3s/containerd/containerd.sock");
  assertEquals(config.resyncInterval, 0);
  assertEquals(sources.resyncInterval, "flag");
  assertEquals(sources.namespace, "default");
});

Deno.test("--filter repeated gives the list in order; one --filter replaces the default", () => {
  assertEquals(resolveServeConfig({ filter: ["a==1", "b==2", "c==3"] }, ENV).config.filters, [
    "a==1",
    "b==2",
    "c==3",
  ]);
  assertEquals(resolveServeConfig({ filter: "only==1" }, ENV).config.filters, ["only==1"]);
  assertEquals(serveParseConfig().filter, { type: "string", multiple: true });
  assertEquals(serveParseConfig().namespace, { type: "string", multiple: false });
  assertEquals(serveParseConfig()["reap-cri-sandboxes"], { type: "boolean" });
});

Deno.test("--reap=always on CRI-selected sandboxes needs --reap-cri-sandboxes", () => {
  const err = assertThrows(() => resolveServeConfig({ reap: "always" }, ENV), RangeError);
  assert(err.message.startsWith("--reap: "), err.message);
  assert(err.message.includes("--reap-cri-sandboxes"), err.message);
  const allowed = resolveServeConfig({ reap: "always", "reap-cri-sandboxes": true }, ENV);
  assertEquals(allowed.config.reap, "always");
  assertEquals(allowed.config.reapCriSandboxes, true);
  assertEquals(allowed.sources.reapCriSandboxes, "flag");
  // A filter that does not select the CRI's sandboxes needs no override.
  assertEquals(
    resolveServeConfig({ reap: "always", filter: "labels.owner==me" }, ENV).config.reap,
    "always",
  );
});

Deno.test("a single-valued flag given twice keeps the last value", () => {
  assertEquals(resolveServeConfig({ namespace: ["a", "b"] }, ENV).config.namespace, "b");
});

Deno.test("a bad value of every option is a RangeError naming the flag, the value and the form", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["address", "relative/containerd.sock", /absolute/],
    ["address", "unix://relative.sock", /unix:\/\/ and an absolute path/],
    ["namespace", "bad/ns", /letters and digits separated by single/],
    ["namespace", "n".repeat(77), /at most 76 characters/],
    ["namespace", "", /letters and digits/],
    ["filter", "", /containerd filter expression is required/],
    ["filter", "   ", /containerd filter expression is required/],
    ["state", "var/lib/x", /an absolute path is required/],
    ["socket", "./agent.sock", /an absolute path is required/],
    ["reap", "sometimes", /accepted: never, always/],
    ["resync-interval", "soon", /e\.g\. 500ms, 5s, 1m30s, 2h/],
    ["resync-interval", "60", /e\.g\. 500ms, 5s, 1m30s, 2h/],
    ["events", "push", /accepted: stream, poll/],
    ["poll-interval", "often", /e\.g\. 500ms, 5s, 1m30s, 2h/],
    ["poll-interval", "5ms", /at least 10ms is required/],
    ["log-level", "verbose", /accepted: trace, debug, info, warning, error, fatal/],
    ["log-format", "xml", /accepted: auto, json, text/],
  ];
  const covered = new Set<string>();
  for (const [flag, value, form] of cases) {
    covered.add(flag);
    const err = assertThrows(() => resolveServeConfig({ [flag]: value }, ENV), RangeError);
    assert(err.message.startsWith(`--${flag}: `), `names --${flag}: ${err.message}`);
    assert(err.message.includes(JSON.stringify(value)), `names ${value}: ${err.message}`);
    assert(form.test(err.message), `gives the accepted form ${form}: ${err.message}`);
  }
  const valued = SERVE_OPTIONS.filter((o) => !("boolean" in o)).map((o) => o.flag);
  assertEquals([...covered].sort(), valued.sort(), "every option that takes a value");
});

Deno.test("one bad value among repeated --filter flags fails the whole option", () => {
  const err = assertThrows(
    () => resolveServeConfig({ filter: ["a==1", ""] }, ENV),
    RangeError,
  );
  assert(err.message.startsWith("--filter: "), err.message);
});

Deno.test("a boolean (a string flag given without a value by a lax parser) keeps the default", () => {
  const { config, sources } = resolveServeConfig({ reap: true }, ENV);
  assertEquals(config.reap, "never");
  assertEquals(sources.reap, "default");
});
