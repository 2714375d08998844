/**
 * Every option of `podsandboxd serve`, defined once: flag, default, accepted values,
 * help text. Parsing, validation, --help and the README's reference derive from here.
 *
 * @module
 */
import {
  EVENT_SOURCES,
  type EventSource,
  REAP_POLICIES,
  type ReapPolicy,
} from "../controller/controller.ts";
import { LOG_LEVELS, type LogLevel } from "../log.ts";
import {
  DEFAULT_CONTAINERD_ADDRESS,
  DEFAULT_CONTAINERD_ROOT,
  DEFAULT_CONTAINERD_STATE,
  DEFAULT_NAMESPACE,
  DEFAULT_PAUSE_IMAGE,
  DEFAULT_SANDBOX_FILTER,
  defaultSocketPath,
  defaultStateDir,
  type Env,
} from "./defaults.ts";
import { CONTAINERD_LAYOUTS, CONTAINERD_SOCKET_CANDIDATES } from "./detect.ts";
import { formatDuration, parseDuration } from "./duration.ts";
import { isIdentifier, MAX_IDENTIFIER_LENGTH } from "../ids.ts";
import { type MetricsAddress, parseMetricsAddress } from "../metrics/server.ts";

export const LOG_FORMATS = ["auto", "json", "text"] as const;
export type LogFormat = typeof LOG_FORMATS[number];

export interface ServeConfig {
  address: string;
  namespace: string;
  filters: string[];
  state: string;
  socket: string;
  reap: ReapPolicy;
  /** The operator's override: reap even sandboxes selected by the CRI's label. */
  reapCriSandboxes: boolean;
  /** Milliseconds; 0 disables the periodic resync. */
  resyncInterval: number;
  events: EventSource;
  /** Milliseconds between listings in poll mode. */
  pollInterval: number;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Where to serve Prometheus metrics; undefined = off. */
  metricsAddress?: MetricsAddress;
  /** Milliseconds records of removed sandboxes are kept; 0 = forever. */
  retention: number;
  /** Group owning the agent's socket (undefined: "podsandboxd" if it exists). */
  socketGroup?: string;
  /** Concurrent Wait calls beyond which calls get RESOURCE_EXHAUSTED. */
  maxWaiters: number;
  /** containerd's state directory: where its task bundles name their shims. */
  containerdState: string;
  /** Wait on each running sandbox's shim for its exit. */
  shimWait: "on" | "off";
  /** Be containerd's sandbox controller for this sandboxer name (undefined: observe only). */
  sandboxer?: string;
  /** The pause image owned sandboxes run (containerd's pinned_images.sandbox). */
  pauseImage: string;
  /** containerd's root directory (the CRI's sandbox files live under it). */
  containerdRoot: string;
  /** As containerd's CRI restrict_oom_score_adj: never below the agent's own OOM score. */
  restrictOomScoreAdj: boolean;
}

/**
 * Where a value came from, in precedence order: flags > environment > file > defaults;
 * "detected": found on the node in place of the default (containerd's socket).
 */
export type ValueSource = "flag" | "env" | "file" | "detected" | "default";

export interface ResolvedServeConfig {
  config: ServeConfig;
  sources: Record<keyof ServeConfig, ValueSource>;
}

interface OptionDef<K extends keyof ServeConfig = keyof ServeConfig> {
  key: K;
  flag: string;
  /** A flag without a value (its presence means true). */
  boolean?: boolean;
  /** Placeholder in help ("PATH"). */
  arg: string;
  multiple?: boolean;
  description: string;
  /** How the default reads in help. */
  defaultText: string;
  default(env: Env): ServeConfig[K];
  /** Parses one flag value; throws RangeError naming the value and the accepted form. */
  parse(text: string): unknown;
}

function oneOf<T extends string>(accepted: readonly T[]) {
  return (text: string): T => {
    if ((accepted as readonly string[]).includes(text)) return text as T;
    throw new RangeError(`invalid value ${JSON.stringify(text)}; accepted: ${accepted.join(", ")}`);
  };
}

function absolutePath(text: string): string {
  if (!text.startsWith("/")) {
    throw new RangeError(`invalid path ${JSON.stringify(text)}: an absolute path is required`);
  }
  return text;
}

function containerdAddress(text: string): string {
  const path = text.startsWith("unix://") ? text.slice("unix://".length) : text;
  if (!path.startsWith("/")) {
    // Name the value as given (with its unix:// prefix), not the part that was checked.
    throw new RangeError(
      `invalid address ${
        JSON.stringify(text)
      }: an absolute socket path (or unix:// and an absolute path) is required`,
    );
  }
  return path;
}

function identifier(text: string): string {
  if (!isIdentifier(text)) {
    throw new RangeError(
      `invalid namespace ${
        JSON.stringify(text)
      }: letters and digits separated by single ".", "_" or "-", at most ${MAX_IDENTIFIER_LENGTH} characters`,
    );
  }
  return text;
}

function nonEmpty(text: string): string {
  if (text.trim() === "") {
    throw new RangeError(
      `invalid filter ${JSON.stringify(text)}: a containerd filter expression is required`,
    );
  }
  return text;
}

function groupName(text: string): string {
  if (!/^(?:\d+|[a-z_][a-z0-9_-]*\$?)$/.test(text) || text.length > 32) {
    throw new RangeError(
      `invalid group ${
        JSON.stringify(text)
      }: a group name (lower case letters, digits, "_", "-") or a numeric gid`,
    );
  }
  return text;
}

/** Names containerd reserves: its own controller ("podsandbox") and the shim plugin. */
const RESERVED_SANDBOXERS = ["podsandbox", "shim"];

function sandboxerName(text: string): string {
  if (!isIdentifier(text)) {
    throw new RangeError(
      `invalid sandboxer ${
        JSON.stringify(text)
      }: letters and digits separated by single ".", "_" or "-", as in containerd's [proxy_plugins.NAME]`,
    );
  }
  if (RESERVED_SANDBOXERS.includes(text)) {
    throw new RangeError(
      `invalid sandboxer ${JSON.stringify(text)}: containerd reserves it for its own (${
        RESERVED_SANDBOXERS.join(", ")
      }); pick another name, e.g. podsandboxd`,
    );
  }
  return text;
}

function nonEmptyValue(what: string) {
  return (text: string): string => {
    if (text.trim() === "") throw new RangeError(`invalid ${what} ${JSON.stringify(text)}`);
    return text;
  };
}

function positiveInteger(text: string): number {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 10_000_000) {
    throw new RangeError(
      `invalid number ${JSON.stringify(text)}: a whole number from 1 to 10000000`,
    );
  }
  return Number(text);
}

function positiveDuration(text: string): number {
  const ms = parseDuration(text);
  if (ms < 10) {
    throw new RangeError(`invalid duration ${JSON.stringify(text)}: at least 10ms is required`);
  }
  return ms;
}

/** The default of a containerd directory that follows --address's known layout. */
function layoutDefault(field: "state" | "root", fallback: string): string {
  return `that of the containerd at --address when it is a known layout (${
    CONTAINERD_LAYOUTS.map((l) => l[field]).join(", ")
  }), else ${fallback}`;
}

function def<K extends keyof ServeConfig>(d: OptionDef<K>): OptionDef<K> {
  return d;
}

export const SERVE_OPTIONS = [
  def({
    key: "address",
    flag: "address",
    arg: "PATH",
    description: "containerd's gRPC socket",
    defaultText: `the first existing of ${
      CONTAINERD_SOCKET_CANDIDATES.join(", ")
    } (containerd, k3s/RKE2, microk8s, Docker); none: ${DEFAULT_CONTAINERD_ADDRESS}, waited for`,
    default: () => DEFAULT_CONTAINERD_ADDRESS,
    parse: containerdAddress,
  }),
  def({
    key: "containerdState",
    flag: "containerd-state",
    arg: "DIR",
    description:
      "containerd's state directory (its `state` setting), where the agent finds each sandbox's shim",
    defaultText: layoutDefault("state", DEFAULT_CONTAINERD_STATE),
    default: () => DEFAULT_CONTAINERD_STATE,
    parse: absolutePath,
  }),
  def({
    key: "shimWait",
    flag: "shim-wait",
    arg: "on|off",
    description:
      "wait on each running sandbox's shim for its exit: the true status and time also when containerd is down as the sandbox dies",
    defaultText: "on",
    default: () => "on" as const,
    parse: oneOf(["on", "off"] as const),
  }),
  def({
    key: "sandboxer",
    flag: "sandboxer",
    arg: "NAME",
    description:
      'be containerd\'s sandbox controller for this sandboxer name (containerd 2.x: [proxy_plugins.NAME] type = "sandbox", a runtime handler with sandboxer = "NAME"): run, stop and remove those pods\' sandboxes',
    defaultText: "off (observe only)",
    default: () => undefined,
    parse: sandboxerName,
  }),
  def({
    key: "pauseImage",
    flag: "pause-image",
    arg: "REF",
    description:
      "image of the sandboxes the agent runs with --sandboxer: the same reference as containerd's pinned_images.sandbox (the CRI pulls it before Start)",
    defaultText: DEFAULT_PAUSE_IMAGE,
    default: () => DEFAULT_PAUSE_IMAGE,
    parse: nonEmptyValue("image reference"),
  }),
  def({
    key: "containerdRoot",
    flag: "containerd-root",
    arg: "DIR",
    description:
      "containerd's root directory (its `root` setting): with --sandboxer, the CRI's sandbox files go under it",
    defaultText: layoutDefault("root", DEFAULT_CONTAINERD_ROOT),
    default: () => DEFAULT_CONTAINERD_ROOT,
    parse: absolutePath,
  }),
  def({
    key: "restrictOomScoreAdj",
    flag: "restrict-oom-score-adj",
    arg: "",
    boolean: true,
    description:
      "with --sandboxer, never give a sandbox an OOM score below the agent's own (as containerd's CRI restrict_oom_score_adj; for agents without CAP_SYS_RESOURCE)",
    defaultText: "off",
    default: () => false,
    parse: () => true,
  }),
  def({
    key: "namespace",
    flag: "namespace",
    arg: "NS",
    description: "containerd namespace whose sandboxes are followed",
    defaultText: DEFAULT_NAMESPACE,
    default: () => DEFAULT_NAMESPACE,
    parse: identifier,
  }),
  def({
    key: "filters",
    flag: "filter",
    arg: "FILTER",
    multiple: true,
    description: "containerd container filter selecting sandboxes (repeat to OR several)",
    defaultText: DEFAULT_SANDBOX_FILTER,
    default: () => [DEFAULT_SANDBOX_FILTER],
    parse: nonEmpty,
  }),
  def({
    key: "state",
    flag: "state",
    arg: "DIR",
    description: "directory of the agent's Deno KV store",
    defaultText:
      "$STATE_DIRECTORY, else /var/lib/podsandboxd as root, else $XDG_STATE_HOME/podsandboxd",
    default: (env) => defaultStateDir(env),
    parse: absolutePath,
  }),
  def({
    key: "socket",
    flag: "socket",
    arg: "PATH",
    description: "unix socket the agent serves its API on",
    defaultText:
      "$RUNTIME_DIRECTORY/podsandboxd.sock, else /run/podsandboxd/podsandboxd.sock as root, else $XDG_RUNTIME_DIR/podsandboxd/podsandboxd.sock",
    default: (env) => defaultSocketPath(env),
    parse: absolutePath,
  }),
  def({
    key: "socketGroup",
    flag: "socket-group",
    arg: "GROUP",
    description:
      "group owning the socket (mode 0660): its members may query the agent; named explicitly, it must exist",
    defaultText: "podsandboxd when that group exists, else the agent's own group",
    default: () => undefined,
    parse: groupName,
  }),
  def({
    key: "maxWaiters",
    flag: "max-waiters",
    arg: "N",
    description:
      "concurrent Wait calls beyond which further ones get RESOURCE_EXHAUSTED (bounds memory)",
    defaultText: "65536",
    default: () => 65_536,
    parse: positiveInteger,
  }),
  def({
    key: "reap",
    flag: "reap",
    arg: REAP_POLICIES.join("|"),
    description:
      "on a sandbox exit, delete its task (always) or only record the exit (never: the sandbox's owner deletes it)",
    defaultText: "never",
    default: () => "never" as ReapPolicy,
    parse: oneOf(REAP_POLICIES),
  }),
  def({
    key: "reapCriSandboxes",
    flag: "reap-cri-sandboxes",
    arg: "",
    boolean: true,
    description:
      "allow --reap=always on sandboxes selected by the CRI's label (only when this agent, not containerd's CRI, owns them)",
    defaultText: "off",
    default: () => false,
    parse: () => true,
  }),
  def({
    key: "resyncInterval",
    flag: "resync-interval",
    arg: "DURATION",
    description: "how often to reconcile with containerd's lists as a safety net (0 disables)",
    defaultText: "1m",
    default: () => 60_000,
    parse: parseDuration,
  }),
  def({
    key: "events",
    flag: "events",
    arg: EVENT_SOURCES.join("|"),
    description:
      "learn exits from containerd's event stream, or by listing tasks every --poll-interval (for hosts without event subscription; exits of tasks deleted between two polls lose their status)",
    defaultText: "stream",
    default: () => "stream" as EventSource,
    parse: oneOf(EVENT_SOURCES),
  }),
  def({
    key: "pollInterval",
    flag: "poll-interval",
    arg: "DURATION",
    description: "listing interval with --events=poll",
    defaultText: "1s",
    default: () => 1_000,
    parse: positiveDuration,
  }),
  def({
    key: "retention",
    flag: "retention",
    arg: "DURATION",
    description:
      "how long records of sandboxes whose container was removed are kept (0 keeps them forever)",
    defaultText: "24h",
    default: () => 24 * 3_600_000,
    parse: parseDuration,
  }),
  def({
    key: "metricsAddress",
    flag: "metrics-address",
    arg: "HOST:PORT|unix:PATH",
    description:
      "serve Prometheus metrics on GET /metrics at this address (HOST:PORT or unix:PATH)",
    defaultText: "off",
    default: () => undefined,
    // An empty value keeps the endpoint off.
    parse: (text: string) => (text === "" ? undefined : parseMetricsAddress(text)),
  }),
  def({
    key: "logLevel",
    flag: "log-level",
    arg: LOG_LEVELS.join("|"),
    description: "lowest level logged",
    defaultText: "info",
    default: () => "info" as LogLevel,
    parse: oneOf(LOG_LEVELS),
  }),
  def({
    key: "logFormat",
    flag: "log-format",
    arg: LOG_FORMATS.join("|"),
    description: "log format on stderr (auto: text on a terminal, JSON lines otherwise)",
    defaultText: "auto",
    default: () => "auto" as LogFormat,
    parse: oneOf(LOG_FORMATS),
  }),
] as const satisfies readonly OptionDef[];

/** node:util parseArgs option config for the serve flags. */
export function serveParseConfig(): Record<
  string,
  { type: "string" | "boolean"; multiple?: boolean }
> {
  return Object.fromEntries([
    ["config", { type: "string" as const }],
    ...SERVE_OPTIONS.map((o) => [
      o.flag,
      "boolean" in o ? { type: "boolean" as const } : {
        type: "string" as const,
        multiple: "multiple" in o,
      },
    ]),
  ]);
}

/** Help lines for the serve flags. */
export function serveOptionsHelp(): string {
  return SERVE_OPTIONS.map((o) =>
    `  --${o.flag}${
      o.arg ? ` ${o.arg}` : ""
    }\n      ${o.description}\n      default: ${o.defaultText}`
  ).join("\n");
}

/** The layers a configuration is resolved from. */
export interface ConfigLayers {
  /** Parsed command-line flags (node:util parseArgs values). */
  flags: Record<string, string | string[] | boolean | undefined>;
  /** Environment: PODSANDBOXD_<FLAG> (upper case, "-" → "_"). */
  env: Env;
  /** The parsed config file, if any. */
  file?: { path: string; values: Record<string, unknown> };
}

/** The environment variable of an option ("resync-interval" → PODSANDBOXD_RESYNC_INTERVAL). */
export function envName(flag: string): string {
  return `PODSANDBOXD_${flag.toUpperCase().replaceAll("-", "_")}`;
}

const BOOLEAN_TEXT: Record<string, boolean> = { true: true, "1": true, false: false, "0": false };

/** One option's value from one layer, or undefined when the layer does not set it. */
function fromLayer(
  option: OptionDef,
  source: Exclude<ValueSource, "default" | "detected">,
  layers: ConfigLayers,
): unknown {
  const parseAll = (texts: string[], where: string): unknown => {
    const parsed = texts.map((text) => {
      try {
        return option.parse(text);
      } catch (err) {
        throw new RangeError(`${where}: ${err instanceof Error ? err.message : err}`);
      }
    });
    return option.multiple ? parsed : parsed[parsed.length - 1];
  };
  switch (source) {
    case "flag": {
      const given = layers.flags[option.flag];
      if (option.boolean) return given === true ? true : undefined;
      if (given === undefined || typeof given === "boolean") return undefined;
      return parseAll(Array.isArray(given) ? given : [given], `--${option.flag}`);
    }
    case "env": {
      const name = envName(option.flag);
      const text = layers.env(name);
      if (text === undefined || text === "") return undefined;
      if (option.boolean) {
        const value = BOOLEAN_TEXT[text.toLowerCase()];
        if (value === undefined) {
          throw new RangeError(
            `${name}: invalid value ${JSON.stringify(text)}; accepted: true, false`,
          );
        }
        return value;
      }
      return parseAll([text], name);
    }
    case "file": {
      const file = layers.file;
      if (!file || !(option.flag in file.values)) return undefined;
      const value = file.values[option.flag];
      const where = `config file ${file.path}: key ${JSON.stringify(option.flag)}`;
      if (option.boolean) {
        if (typeof value !== "boolean") {
          throw new RangeError(
            `${where}: invalid value ${JSON.stringify(value)}; accepted: true, false`,
          );
        }
        return value;
      }
      const texts = Array.isArray(value) && option.multiple ? value : [value];
      if (!texts.every((t) => typeof t === "string")) {
        throw new RangeError(
          `${where}: invalid value ${JSON.stringify(value)}; accepted: ${
            option.multiple ? "a string or an array of strings" : "a string"
          } (${option.arg})`,
        );
      }
      return parseAll(texts as string[], where);
    }
  }
}

/**
 * Resolves the serve configuration: flags over environment over the config file over
 * defaults, in this one place. Throws RangeError naming the flag/variable/key, the bad
 * value and the accepted form; unknown config file keys are errors too.
 */
export function resolveServeConfig(layers: ConfigLayers): ResolvedServeConfig {
  const options = SERVE_OPTIONS as readonly OptionDef[];
  if (layers.file) {
    const known = new Set(options.map((o) => o.flag));
    for (const key of Object.keys(layers.file.values)) {
      if (!known.has(key)) {
        throw new RangeError(
          `config file ${layers.file.path}: unknown key ${JSON.stringify(key)}; accepted keys: ${
            [...known].join(", ")
          }`,
        );
      }
    }
  }
  const config: Record<string, unknown> = {};
  const sources: Record<string, ValueSource> = {};
  for (const option of options) {
    config[option.key] = option.default(layers.env);
    sources[option.key] = "default";
    for (const source of ["flag", "env", "file"] as const) {
      const value = fromLayer(option, source, layers);
      if (value !== undefined) {
        config[option.key] = value;
        sources[option.key] = source;
        break;
      }
    }
  }
  checkConsistency(config as unknown as ServeConfig);
  return {
    config: config as unknown as ServeConfig,
    sources: sources as Record<keyof ServeConfig, ValueSource>,
  };
}

/** Refuses combinations that are valid alone but wrong together. */
function checkConsistency(config: ServeConfig): void {
  if (config.sandboxer !== undefined && config.namespace !== DEFAULT_NAMESPACE) {
    throw new RangeError(
      `--sandboxer: containerd's CRI runs pods in namespace ${DEFAULT_NAMESPACE}, but ` +
        `--namespace is ${config.namespace}; a sandbox controller follows ${DEFAULT_NAMESPACE}`,
    );
  }
  const criSelected = config.filters.some((f) => f.includes("io.cri-containerd.kind"));
  if (config.reap === "always" && criSelected && !config.reapCriSandboxes) {
    throw new RangeError(
      "--reap: always is refused for sandboxes selected by containerd CRI's label " +
        `(--filter ${config.filters.join(" --filter ")}): the CRI deletes their tasks itself, ` +
        "and a second deleter races it and leaks shims (containerd#12344). Keep --reap=never, " +
        "or pass --reap-cri-sandboxes if this agent, not the CRI, owns these sandboxes",
    );
  }
}

export { formatDuration };
