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
import { BAD_OPTION_VALUES } from "../harness/bad_options.ts";

/** An environment that fixes both default paths, whoever runs the test. */
const ENV: Env = (name) =>
  ({ STATE_DIRECTORY: "/srv/state", RUNTIME_DIRECTORY: "/srv/run" } as Record<string, string>)[
    name
  ];

Deno.test("without flags every option has its default, with source 'default'", () => {
  const { config, sources } = resolveServeConfig({ flags: {}, env: ENV });
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
    metricsAddress: undefined,
    retention: 86_400_000,
    socketGroup: undefined,
    maxWaiters: 65_536,
    containerdState: "/run/containerd",
    shimWait: "on",
    sandboxer: undefined,
    pauseImage: "registry.k8s.io/pause:3.10",
    containerdRoot: "/var/lib/containerd",
    restrictOomScoreAdj: false,
  });
  assertEquals(Object.keys(sources).sort(), Object.keys(config).sort());
  for (const [k, source] of Object.entries(sources)) assertEquals(source, "default", k);
});

Deno.test("every flag parses, and its source becomes 'flag'", () => {
  const { config, sources } = resolveServeConfig({
    flags: {
      address: "unix:///var/run/ctrd.sock",
      // --sandboxer takes containerd CRI's namespace.
      namespace: "k8s.io",
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
      retention: "1h",
      "metrics-address": "127.0.0.1:9477",
      "socket-group": "podsandboxd",
      "max-waiters": "100",
      "containerd-state": "/srv/containerd/state",
      "shim-wait": "off",
      sandboxer: "podsandboxd",
      "pause-image": "docker.io/local/pause:latest",
      "containerd-root": "/srv/containerd/root",
      "restrict-oom-score-adj": true,
    },
    env: ENV,
  });
  assertEquals(config, {
    address: "/var/run/ctrd.sock",
    namespace: "k8s.io",
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
    retention: 3_600_000,
    metricsAddress: { hostname: "127.0.0.1", port: 9477 },
    socketGroup: "podsandboxd",
    maxWaiters: 100,
    containerdState: "/srv/containerd/state",
    shimWait: "off",
    sandboxer: "podsandboxd",
    pauseImage: "docker.io/local/pause:latest",
    containerdRoot: "/srv/containerd/root",
    restrictOomScoreAdj: true,
  });
  for (const [k, source] of Object.entries(sources)) assertEquals(source, "flag", k);
});

Deno.test("--sandboxer is refused with a namespace other than the CRI's", () => {
  assertThrows(
    () => resolveServeConfig({ flags: { sandboxer: "podsandboxd", namespace: "moby" }, env: ENV }),
    RangeError,
    /containerd's CRI runs pods in namespace k8s\.io, but --namespace is moby/,
  );
});

Deno.test("a plain absolute address and a resync interval of 0 are accepted", () => {
  const { config, sources } = resolveServeConfig({
    flags: { address: "/run/k3s/containerd/containerd.sock", "resync-interval": "0" },
    env: ENV,
  });
  assertEquals(config.address, "/run/k3s/containerd/containerd.sock");
  assertEquals(config.resyncInterval, 0);
  assertEquals(sources.resyncInterval, "flag");
  assertEquals(sources.namespace, "default");
});

Deno.test("--filter repeated gives the list in order; one --filter replaces the default", () => {
  assertEquals(
    resolveServeConfig({ flags: { filter: ["a==1", "b==2", "c==3"] }, env: ENV }).config.filters,
    [
      "a==1",
      "b==2",
      "c==3",
    ],
  );
  assertEquals(resolveServeConfig({ flags: { filter: "only==1" }, env: ENV }).config.filters, [
    "only==1",
  ]);
  assertEquals(serveParseConfig().filter, { type: "string", multiple: true });
  assertEquals(serveParseConfig().namespace, { type: "string", multiple: false });
  assertEquals(serveParseConfig()["reap-cri-sandboxes"], { type: "boolean" });
});

Deno.test("--reap=always on CRI-selected sandboxes needs --reap-cri-sandboxes", () => {
  const err = assertThrows(
    () => resolveServeConfig({ flags: { reap: "always" }, env: ENV }),
    RangeError,
  );
  assert(err.message.startsWith("--reap: "), err.message);
  assert(err.message.includes("--reap-cri-sandboxes"), err.message);
  const allowed = resolveServeConfig({
    flags: { reap: "always", "reap-cri-sandboxes": true },
    env: ENV,
  });
  assertEquals(allowed.config.reap, "always");
  assertEquals(allowed.config.reapCriSandboxes, true);
  assertEquals(allowed.sources.reapCriSandboxes, "flag");
  // A filter that does not select the CRI's sandboxes needs no override.
  assertEquals(
    resolveServeConfig({ flags: { reap: "always", filter: "labels.owner==me" }, env: ENV }).config
      .reap,
    "always",
  );
});

Deno.test("a single-valued flag given twice keeps the last value", () => {
  assertEquals(
    resolveServeConfig({ flags: { namespace: ["a", "b"] }, env: ENV }).config.namespace,
    "b",
  );
});

Deno.test("a bad value of every option is a RangeError naming the flag, the value and the form", () => {
  const cases = BAD_OPTION_VALUES;
  const covered = new Set<string>();
  for (const [flag, value, form] of cases) {
    covered.add(flag);
    const err = assertThrows(
      () => resolveServeConfig({ flags: { [flag]: value }, env: ENV }),
      RangeError,
    );
    assert(err.message.startsWith(`--${flag}: `), `names --${flag}: ${err.message}`);
    assert(err.message.includes(JSON.stringify(value)), `names ${value}: ${err.message}`);
    assert(form.test(err.message), `gives the accepted form ${form}: ${err.message}`);
  }
  const valued = SERVE_OPTIONS.filter((o) => !("boolean" in o)).map((o) => o.flag);
  assertEquals([...covered].sort(), valued.sort(), "every option that takes a value");
});

Deno.test("one bad value among repeated --filter flags fails the whole option", () => {
  const err = assertThrows(
    () => resolveServeConfig({ flags: { filter: ["a==1", ""] }, env: ENV }),
    RangeError,
  );
  assert(err.message.startsWith("--filter: "), err.message);
});

Deno.test("a boolean (a string flag given without a value by a lax parser) keeps the default", () => {
  const { config, sources } = resolveServeConfig({ flags: { reap: true }, env: ENV });
  assertEquals(config.reap, "never");
  assertEquals(sources.reap, "default");
});

Deno.test("precedence: flags over PODSANDBOXD_* environment over the config file over defaults", () => {
  const env = (name: string) =>
    ({
      PODSANDBOXD_NAMESPACE: "from-env",
      PODSANDBOXD_REAP: "always",
      PODSANDBOXD_REAP_CRI_SANDBOXES: "true",
    })[name];
  const { config, sources } = resolveServeConfig({
    flags: { namespace: "from-flag" },
    env,
    file: {
      path: "/etc/podsandboxd/config.toml",
      values: {
        namespace: "from-file",
        reap: "never",
        "resync-interval": "5m",
        filter: "labels.a==b",
      },
    },
  });
  assertEquals([config.namespace, sources.namespace], ["from-flag", "flag"]);
  assertEquals([config.reap, sources.reap], ["always", "env"]);
  assertEquals([config.reapCriSandboxes, sources.reapCriSandboxes], [true, "env"]);
  assertEquals([config.resyncInterval, sources.resyncInterval], [300_000, "file"]);
  assertEquals([config.filters, sources.filters], [["labels.a==b"], "file"]);
  assertEquals(sources.address, "default");
});

Deno.test("config file and environment errors name the key or variable, the value and the accepted form", () => {
  const file = (values: Record<string, unknown>) => ({ path: "/x/config.toml", values });
  const cases: Array<[Parameters<typeof resolveServeConfig>[0], RegExp]> = [
    [
      { flags: {}, env: ENV, file: file({ color: "blue" }) },
      /config file \/x\/config.toml: unknown key "color"; accepted keys: address, /,
    ],
    [
      { flags: {}, env: ENV, file: file({ reap: 1 }) },
      /key "reap": invalid value 1; accepted: a string \(never\|always\)/,
    ],
    [
      { flags: {}, env: ENV, file: file({ "reap-cri-sandboxes": "yes" }) },
      /key "reap-cri-sandboxes": invalid value "yes"; accepted: true, false/,
    ],
    [
      { flags: {}, env: ENV, file: file({ "poll-interval": "1" }) },
      /key "poll-interval": invalid duration "1"/,
    ],
    [
      { flags: {}, env: (n) => (n === "PODSANDBOXD_EVENTS" ? "webhook" : undefined) },
      /PODSANDBOXD_EVENTS: invalid value "webhook"; accepted: stream, poll/,
    ],
    [
      { flags: {}, env: (n) => (n === "PODSANDBOXD_REAP_CRI_SANDBOXES" ? "maybe" : undefined) },
      /PODSANDBOXD_REAP_CRI_SANDBOXES: invalid value "maybe"; accepted: true, false/,
    ],
  ];
  for (const [layers, pattern] of cases) {
    assertThrows(() => resolveServeConfig(layers), RangeError, pattern);
  }
});
