import { join } from "node:path";
import { GrpcContainerdClient } from "../containerd/grpc_client.ts";
import { Controller } from "../controller/controller.ts";
import { processEnv } from "../config/defaults.ts";
import { DEFAULT_CONFIG_FILE, type LoadedServeConfig, loadServeConfig } from "../config/load.ts";
import { type ServeConfig, serveOptionsHelp, serveParseConfig } from "../config/serve_options.ts";
import { flushLogs, logger, setupLogging } from "../log.ts";
import { AgentMetrics } from "../metrics/agent_metrics.ts";
import { describeAddress, serveMetrics } from "../metrics/server.ts";
import { ApiServer } from "../server/server.ts";
import { prepareSocketPath } from "../server/socket.ts";
import { KvSandboxStore } from "../store/kv_store.ts";
import { dialShim, StateDirShimLocator, TASK_BUNDLES_DIR } from "../shim/mod.ts";
import { criDirs, SandboxRuntime } from "../sandboxer/mod.ts";
import { ownedSandboxRuntime } from "./owned_runtime.ts";
import { prepareStateDir } from "../store/state_dir.ts";
import { serveNeeds } from "../permissions/needs.ts";
import { checkPermissions } from "./preflight.ts";
import { ExitTrace } from "../trace/exit_trace.ts";
import { type Command, parseCommandArgs, UsageError } from "./command.ts";

const log = logger("serve");

/** The configuration for parsed serve flags; bad values are usage errors (exit 2). */
export async function loadConfig(
  values: Record<string, string | string[] | boolean | undefined>,
): Promise<LoadedServeConfig> {
  try {
    return await loadServeConfig(values, processEnv);
  } catch (err) {
    if (err instanceof RangeError) throw new UsageError(err.message);
    throw err;
  }
}

/** Help text of the configuration sources, shared by serve and config. */
export const CONFIG_HELP =
  `Configuration: flags override PODSANDBOXD_<FLAG> environment variables (e.g.
PODSANDBOXD_RESYNC_INTERVAL=30s), which override the TOML config file (keys are the flag
names, e.g. resync-interval = "30s"), which overrides the defaults.
  --config PATH
      config file (default: ${DEFAULT_CONFIG_FILE}, read when present)`;

/**
 * Time allowed for in-flight calls to finish at shutdown, after the controller's drain
 * (DEFAULT_SHUTDOWN_DRAIN_MS): the whole stop stays under 5 s.
 */
const SHUTDOWN_GRACE_MS = 2_000;

export const serveCommand: Command = {
  name: "serve",
  summary: "run the agent",
  help: `Usage: podsandboxd serve [options]

Follows containerd's pod sandboxes, records every sandbox exit in a Deno KV store and
answers wait/status on a unix socket. Stops cleanly on SIGTERM or SIGINT.

${CONFIG_HELP}

Options:
${serveOptionsHelp()}
  -h, --help
      show this help`,
  async run(args) {
    const parsed = parseCommandArgs(this, args, serveParseConfig(), { min: 0, max: 0 });
    if (!parsed) return 0;
    const loaded = await loadConfig(parsed.values);
    const { config } = loaded;
    checkPermissions(serveNeeds(loaded));
    await setupLogging({
      level: config.logLevel,
      json: config.logFormat === "auto" ? undefined : config.logFormat === "json",
    });
    logDetection(loaded);
    return await serve(config);
  },
};

/** With no --address configured: which socket was found, or that the default is waited for. */
function logDetection({ config, sources, candidates }: LoadedServeConfig): void {
  if (sources.address === "detected") {
    log.info("containerd socket {address} detected (the first existing of {candidates})", {
      address: config.address,
      candidates: candidates?.join(", "),
    });
  } else if (candidates) {
    log.info("no containerd socket at {candidates}; waiting for {address}", {
      address: config.address,
      candidates: candidates.join(", "),
    });
  }
}

/** Runs the agent until SIGTERM/SIGINT; returns the exit code. */
export async function serve(config: ServeConfig): Promise<number> {
  const stop = new AbortController();
  const onSignal = () => {
    if (stop.signal.aborted) return;
    log.info("stopping on signal");
    stop.abort();
  };
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);

  const metrics = new AgentMetrics();
  // PODSANDBOXD_EXIT_TRACE=1: per-exit timestamps, logged when the agent stops.
  const trace = ExitTrace.fromEnv(processEnv);
  if (trace) log.info("tracing exits (PODSANDBOXD_EXIT_TRACE): one line each when stopping");
  const store = await KvSandboxStore.open(await prepareStateDir(config.state), {
    onCommit: (seconds) => metrics.storeCommit.observe(seconds),
    onGroupCommit: trace && ((keys, startedAt, endedAt) => trace.group(keys, startedAt, endedAt)),
  });
  const client = new GrpcContainerdClient({
    address: config.address,
    onCall: (method) => metrics.containerdCalls.inc({ method }),
    onEvent: trace &&
      ((event, receivedAt, decodedAt) => trace.eventReceived(event, receivedAt, decodedAt)),
  });
  const controller = new Controller(client, store, {
    namespace: config.namespace,
    filters: config.filters,
    reap: config.reap,
    events: config.events,
    resyncIntervalMs: config.resyncInterval,
    pollIntervalMs: config.pollInterval,
    retentionMs: config.retention,
    maxWaiters: config.maxWaiters,
    observer: metrics.controllerObserver(),
    trace,
    shims: config.shimWait === "on"
      ? { locator: new StateDirShimLocator(config.containerdState), dial: dialShim }
      : undefined,
    sandboxer: config.sandboxer === undefined ? undefined : {
      name: config.sandboxer,
      runtime: ownedSandboxRuntime(
        new SandboxRuntime({
          client,
          pauseImage: config.pauseImage,
          criDirs: criDirs(config.containerdRoot, config.containerdState),
          restrictOomScoreAdj: config.restrictOomScoreAdj,
        }),
      ),
    },
  });
  if (config.shimWait === "on") await checkShimDir(config.containerdState);
  metrics.bind(controller);
  let server: ApiServer | undefined;
  let metricsServer: Deno.HttpServer | undefined;
  // The controller follows containerd until its own shutdown (after the drain), not
  // until the signal: the events already on their way must still be applied.
  const following = new AbortController();
  try {
    const running = controller.run(following.signal);
    // Serve once the first session synced — or failed: then the store still answers.
    const aborted = new Promise<void>((resolve) =>
      stop.signal.addEventListener("abort", () => resolve())
    );
    await Promise.race([controller.firstOutcome(), aborted]);
    if (!stop.signal.aborted && config.metricsAddress) {
      // Its directory made, a stale socket (after a crash) replaced, as for the API socket.
      if ("path" in config.metricsAddress) await prepareSocketPath(config.metricsAddress.path);
      metricsServer = serveMetrics(config.metricsAddress, metrics.registry);
      log.info("metrics on {address}", { address: describeAddress(config.metricsAddress) });
    }
    if (!stop.signal.aborted) {
      server = await ApiServer.start({
        socketPath: config.socket,
        service: controller,
        socketGroup: config.socketGroup,
        onWaitAnswered: trace && ((key) => trace.answered(`${key.namespace}/${key.id}`)),
      });
      log.info(
        "serving on {socket} (namespace {namespace}, state {state}, reap {reap}, events {events}" +
          (config.sandboxer ? ", sandbox controller for sandboxer {sandboxer})" : ")"),
        {
          socket: config.socket,
          namespace: config.namespace,
          state: config.state,
          reap: config.reap,
          events: config.events,
          sandboxer: config.sandboxer,
        },
      );
    }
    await aborted;
    // Exits already received are committed (and their waiters answered) first; then
    // waiters get UNAVAILABLE "shutting down" before the server stops taking calls.
    await controller.shutdown();
    following.abort();
    await server?.close(SHUTDOWN_GRACE_MS);
    // Scrapers get a moment; a stuck one must not hold the stop past its 5 s.
    await Promise.race([metricsServer?.shutdown(), new Promise((r) => setTimeout(r, 500))]);
    await running;
    return 0;
  } finally {
    following.abort();
    trace?.flush();
    controller.close();
    client.close();
    store.close();
    Deno.removeSignalListener("SIGTERM", onSignal);
    Deno.removeSignalListener("SIGINT", onSignal);
    // The process exits right after: what waits for the end of the turn goes out now.
    flushLogs();
  }
}

/**
 * Warns when --containerd-state does not look like containerd's state directory: shim
 * wait would then find no shim (and say so for every sandbox).
 */
async function checkShimDir(state: string): Promise<void> {
  const bundles = join(state, TASK_BUNDLES_DIR);
  try {
    await Deno.stat(bundles);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    log.warn(
      "{bundles} does not exist: is {state} containerd's state directory (its `state` " +
        "setting)? Shim wait finds no shims until it does; pass --containerd-state, or " +
        "--shim-wait off",
      { bundles, state },
    );
  }
}
