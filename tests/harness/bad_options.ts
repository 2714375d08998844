/**
 * A bad value for every `serve` option, with the accepted form its error must show.
 * Shared by the unit test of the option table and the CLI test (exit 2 for flags and
 * config file keys alike).
 */
export const BAD_OPTION_VALUES: ReadonlyArray<[flag: string, value: string, form: RegExp]> = [
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
  ["retention", "a day", /e\.g\. 500ms, 5s, 1m30s, 2h/],
  ["metrics-address", "0.0.0.0", /HOST:PORT \(e\.g\. 127\.0\.0\.1:9477\) or unix:\/path/],
  ["metrics-address", "localhost:99999", /HOST:PORT/],
  ["metrics-address", "unix:relative", /unix:\/path/],
  ["socket-group", "Bad Group!", /a group name .* or a numeric gid/],
  ["max-waiters", "0", /a whole number from 1 to 10000000/],
  ["max-waiters", "many", /a whole number from 1 to 10000000/],
  ["containerd-state", "run/containerd", /an absolute path is required/],
  ["containerd-root", "var/lib/containerd", /an absolute path is required/],
  ["shim-wait", "yes", /accepted: on, off/],
  ["sandboxer", "podsandbox", /containerd reserves it .*pick another name, e\.g\. podsandboxd/],
  ["sandboxer", "shim", /containerd reserves it/],
  ["sandboxer", "my sandboxer", /as in containerd's \[proxy_plugins\.NAME\]/],
  ["pause-image", " ", /invalid image reference/],
];
