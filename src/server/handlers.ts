/**
 * gRPC handlers for containerd's sandbox Controller API and podsandboxd's own API.
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import {
  CancelledError,
  DeadlineExceededError,
  InvalidArgumentError,
  UnimplementedError,
} from "../errors.ts";
import type {
  ControllerCreateRequest,
  ControllerCreateResponse,
  ControllerPlatformResponse,
  ControllerShutdownRequest,
  ControllerShutdownResponse,
  ControllerStartRequest,
  ControllerStartResponse,
  ControllerStatusResponse,
  ControllerStopRequest,
  ControllerStopResponse,
  ControllerWaitResponse,
} from "../gen/containerd/services/sandbox/v1/sandbox.ts";
import type { Any } from "../gen/google/protobuf/any.ts";
import type { CreateRequest } from "../controller/controller.ts";
import type { OpaqueAny } from "../store/owned.ts";
import {
  type AgentStatus,
  ExitSource as WireExitSource,
  type GetResponse,
  type ListResponse,
  type Sandbox,
  SandboxState as WireState,
  type WatchEvent,
  type WatchRequest,
} from "../gen/podsandboxd/v1/podsandboxd.ts";
import { validateIdentifier } from "../ids.ts";
import { logger } from "../log.ts";
import { MalformedRequest } from "./malformed.ts";
import type { ExitSource, SandboxKey, SandboxRecord, SandboxState } from "../store/types.ts";
import { toTimestamp } from "../time.ts";
import { toServiceError } from "./status.ts";
import type { SandboxService } from "./types.ts";

const log = logger("server");

/** Metadata key containerd clients use to name the namespace. */
export const NAMESPACE_METADATA = "containerd-namespace";

type UnaryCall<Req> = grpc.ServerUnaryCall<Req, unknown>;
type Callback<Res> = grpc.sendUnaryData<Res>;

/** A request that did not decode is the client's error: INVALID_ARGUMENT naming why. */
export function rejectMalformed(request: unknown, method: string): void {
  if (request instanceof MalformedRequest) {
    throw new InvalidArgumentError(`malformed ${method} request: ${request.reason}`);
  }
}

/**
 * Wraps an async handler: its result or typed error becomes the gRPC response.
 * `answered` is told once a result has been handed to grpc-js.
 */
function unary<Req, Res>(
  method: string,
  handler: (call: UnaryCall<Req>) => Promise<Res>,
  answered?: (call: UnaryCall<Req>) => void,
): (call: UnaryCall<Req>, callback: Callback<Res>) => void {
  return (call, callback) => {
    // Async, so a handler that throws synchronously still answers with its status.
    Promise.resolve().then(() => {
      rejectMalformed(call.request, method);
      return handler(call);
    }).then(
      (res) => {
        callback(null, res);
        answered?.(call);
      },
      (err) => callback(toServiceError(err, method) as grpc.ServiceError),
    );
  };
}

function namespaceOf(
  call: { metadata: grpc.Metadata },
  service: SandboxService,
  explicit = "",
): string {
  const fromMetadata = call.metadata.get(NAMESPACE_METADATA)[0];
  const ns = explicit || (typeof fromMetadata === "string" ? fromMetadata : "") ||
    service.namespace;
  validateIdentifier("namespace", ns);
  return ns;
}

function sandboxKey(
  call: UnaryCall<unknown>,
  service: SandboxService,
  id: string,
  namespace = "",
): SandboxKey {
  if (id === "") throw new InvalidArgumentError("sandbox id is required");
  validateIdentifier("sandbox id", id);
  return { namespace: namespaceOf(call, service, namespace), id };
}

/** An AbortSignal that fires when the client cancels or the call's deadline passes. */
function callSignal(call: UnaryCall<unknown>, what: string): { signal: AbortSignal; done(): void } {
  const controller = new AbortController();
  const onCancel = () => controller.abort(new CancelledError(`${what}: cancelled by the client`));
  call.on("cancelled", onCancel);
  const deadline = call.getDeadline();
  const ms = deadline instanceof Date
    ? deadline.getTime() - Date.now()
    : Number(deadline) - Date.now();
  const timer = Number.isFinite(ms)
    ? setTimeout(
      () => controller.abort(new DeadlineExceededError(`${what}: deadline exceeded`)),
      Math.max(0, ms),
    )
    : undefined;
  return {
    signal: controller.signal,
    done() {
      clearTimeout(timer);
      call.removeListener("cancelled", onCancel);
    },
  };
}

/** containerd.services.sandbox.v1.Controller; `onWaitAnswered` is told of each Wait answered. */
export function sandboxControllerHandlers(
  service: SandboxService,
  options: { onWaitAnswered?: (key: SandboxKey) => void } = {},
) {
  const { onWaitAnswered } = options;
  const unimplemented = (rpc: string) =>
    unary<unknown, never>(`Controller/${rpc}`, () => {
      throw new UnimplementedError(
        `containerd.services.sandbox.v1.Controller/${rpc} is not implemented by podsandboxd`,
      );
    });
  /** Runs a lifecycle call with the call's cancellation as its signal. */
  const lifecycle = <Req extends { sandboxId: string; sandboxer: string }, Res>(
    rpc: string,
    run: (req: Req, key: SandboxKey, signal: AbortSignal) => Promise<Res>,
  ) =>
    unary<Req, Res>(`Controller/${rpc}`, async (call) => {
      const key = sandboxKey(call, service, call.request.sandboxId);
      const { signal, done } = callSignal(call, `${rpc} of sandbox ${key.id}`);
      log.debug("{rpc} of sandbox {namespace}/{id} (sandboxer {sandboxer})", {
        rpc,
        ...key,
        sandboxer: call.request.sandboxer,
      });
      try {
        return await run(call.request, key, signal);
      } finally {
        done();
      }
    });
  return {
    platform: unary<{ sandboxId: string }, ControllerPlatformResponse>(
      "Controller/Platform",
      async (call) => {
        // The platform is the node's; an id, when given, must name a known sandbox.
        if (call.request.sandboxId !== "") {
          await service.get(sandboxKey(call, service, call.request.sandboxId));
        }
        const p = service.platform();
        return {
          platform: {
            os: p.os,
            architecture: p.architecture,
            variant: p.variant,
            osVersion: "",
            osFeatures: [],
          },
        };
      },
    ),
    wait: unary<{ sandboxId: string }, ControllerWaitResponse>(
      "Controller/Wait",
      async (call) => {
        const key = sandboxKey(call, service, call.request.sandboxId);
        const { signal, done } = callSignal(call, `wait for sandbox ${key.id}`);
        try {
          const record = await service.wait(key, { signal });
          return { exitStatus: record.exit.status, exitedAt: toTimestamp(record.exit.exitedAt) };
        } finally {
          done();
        }
      },
      onWaitAnswered &&
        ((call) => onWaitAnswered(sandboxKey(call, service, call.request.sandboxId))),
    ),
    status: unary<{ sandboxId: string; verbose: boolean }, ControllerStatusResponse>(
      "Controller/Status",
      async (call) => {
        const record = await service.get(sandboxKey(call, service, call.request.sandboxId));
        return {
          sandboxId: record.id,
          pid: record.pid ?? 0,
          state: record.state,
          info: call.request.verbose ? verboseInfo(record) : {},
          createdAt: toTimestamp(record.createdAt),
          exitedAt: toTimestamp(record.exit?.exitedAt),
          extra: undefined,
          address: "",
          version: 0,
        };
      },
    ),
    create: lifecycle<ControllerCreateRequest, ControllerCreateResponse>(
      "Create",
      async (req, key) => {
        await service.createSandbox(req.sandboxer, createRequest(req, key));
        return { sandboxId: key.id };
      },
    ),
    start: lifecycle<ControllerStartRequest, ControllerStartResponse>(
      "Start",
      async (req, key, signal) => {
        const started = await service.startSandbox(req.sandboxer, key, { signal });
        return {
          sandboxId: key.id,
          pid: started.pid,
          createdAt: toTimestamp(started.createdAt),
          labels: started.labels,
          // containerd then finds the pause task's shim itself (container id = sandbox id).
          address: "",
          version: 0,
        };
      },
    ),
    stop: lifecycle<ControllerStopRequest, ControllerStopResponse>(
      "Stop",
      async (req, key, signal) => {
        await service.stopSandbox(req.sandboxer, key, { timeoutSecs: req.timeoutSecs, signal });
        return {};
      },
    ),
    shutdown: lifecycle<ControllerShutdownRequest, ControllerShutdownResponse>(
      "Shutdown",
      async (req, key, signal) => {
        await service.shutdownSandbox(req.sandboxer, key, { signal });
        return {};
      },
    ),
    // containerd's CRI never calls these for a sandbox controller.
    metrics: unimplemented("Metrics"),
    update: unimplemented("Update"),
  };
}

/** A Create on the wire, as the controller keeps it. */
function createRequest(req: ControllerCreateRequest, key: SandboxKey): CreateRequest {
  const runtime = req.sandbox?.runtime;
  const extensions: Record<string, OpaqueAny> = {};
  for (const [name, any] of Object.entries(req.sandbox?.extensions ?? {})) {
    extensions[name] = opaque(any)!;
  }
  return {
    namespace: key.namespace,
    id: key.id,
    sandboxer: req.sandboxer,
    options: opaque(req.options),
    netnsPath: req.netnsPath,
    annotations: req.annotations,
    runtime: { name: runtime?.name ?? "", options: opaque(runtime?.options) },
    labels: req.sandbox?.labels ?? {},
    extensions,
  };
}

function opaque(any: Any | undefined): OpaqueAny | undefined {
  // A copy: grpc-js hands Node Buffers, views into a pool shared by other messages.
  return any ? { typeUrl: any.typeUrl, value: Uint8Array.from(any.value) } : undefined;
}

function verboseInfo(record: SandboxRecord): Record<string, string> {
  const info: Record<string, string> = { namespace: record.namespace };
  if (record.exit) {
    info.exitStatus = String(record.exit.status);
    info.exitStatusKnown = String(record.exit.statusKnown);
    info.exitTimeKnown = String(record.exit.exitedAtKnown !== false);
    info.exitSource = record.exit.source;
    if (record.exit.reason) info.exitReason = record.exit.reason;
  }
  if (record.deletedAt) info.deletedAt = record.deletedAt;
  if (record.pod?.name) info.podName = record.pod.name;
  if (record.pod?.namespace) info.podNamespace = record.pod.namespace;
  if (record.pod?.uid) info.podUid = record.pod.uid;
  // What `crictl inspectp` shows as "info": the same as one JSON document, as containerd's
  // own controller puts its sandbox's there.
  info.info = JSON.stringify({
    pid: record.pid ?? 0,
    state: record.state,
    createdAt: record.createdAt,
    ...(record.exit && {
      exitStatus: record.exit.status,
      exitedAt: record.exit.exitedAt,
      exitStatusKnown: record.exit.statusKnown,
      exitSource: record.exit.source,
    }),
    ...(record.sandboxer && { sandboxer: record.sandboxer }),
  });
  return info;
}

const WIRE_STATES: Record<SandboxState, WireState> = {
  SANDBOX_READY: WireState.SANDBOX_READY,
  SANDBOX_NOTREADY: WireState.SANDBOX_NOTREADY,
};

const WIRE_SOURCES: Record<ExitSource, WireExitSource> = {
  "event": WireExitSource.EXIT_SOURCE_EVENT,
  "task-status": WireExitSource.EXIT_SOURCE_TASK_STATUS,
  "unreadable": WireExitSource.EXIT_SOURCE_UNREADABLE,
  "task-missing": WireExitSource.EXIT_SOURCE_TASK_MISSING,
  "shim": WireExitSource.EXIT_SOURCE_SHIM,
};

/** A record on the wire (podsandboxd.v1.Sandbox). */
export function toWireSandbox(record: SandboxRecord): Sandbox {
  return {
    namespace: record.namespace,
    id: record.id,
    pid: record.pid ?? 0,
    state: WIRE_STATES[record.state],
    createdAt: toTimestamp(record.createdAt),
    exitedAt: toTimestamp(record.exit?.exitedAt),
    exitStatus: record.exit?.status,
    exitStatusKnown: record.exit?.statusKnown ?? false,
    exitTimeKnown: record.exit !== undefined && record.exit.exitedAtKnown !== false,
    exitSource: record.exit
      ? WIRE_SOURCES[record.exit.source]
      : WireExitSource.EXIT_SOURCE_UNSPECIFIED,
    exitReason: record.exit?.reason ?? "",
    labels: record.labels,
    podName: record.pod?.name ?? "",
    podNamespace: record.pod?.namespace ?? "",
    podUid: record.pod?.uid ?? "",
    sandboxer: record.sandboxer,
    deletedAt: toTimestamp(record.deletedAt),
    updatedAt: toTimestamp(record.updatedAt),
  };
}

function stateFilter(state: WireState): SandboxState | undefined {
  switch (state) {
    case WireState.SANDBOX_STATE_UNSPECIFIED:
      return undefined;
    case WireState.SANDBOX_READY:
      return "SANDBOX_READY";
    case WireState.SANDBOX_NOTREADY:
      return "SANDBOX_NOTREADY";
    default:
      throw new InvalidArgumentError(
        `state ${state} is not a SandboxState (0 any, 1 SANDBOX_READY, 2 SANDBOX_NOTREADY)`,
      );
  }
}

function agentStatus(service: SandboxService): AgentStatus {
  const s = service.status;
  return {
    containerd: s.state,
    since: toTimestamp(s.since),
    error: s.error ?? "",
    containerdVersion: s.containerdVersion ?? "",
  };
}

/** podsandboxd.v1.Sandboxes. */
/** Streams record changes; see the Watch contract in podsandboxd.proto. */
function watchHandler(service: SandboxService) {
  return (call: grpc.ServerWritableStream<WatchRequest, WatchEvent>) => {
    const abort = new AbortController();
    call.on("cancelled", () => abort.abort());
    (async () => {
      rejectMalformed(call.request, "Sandboxes/Watch");
      const namespace = namespaceOf(call, service, call.request.namespace);
      const changes = service.watch({
        namespace,
        snapshot: call.request.snapshot,
        signal: abort.signal,
      });
      for await (const change of changes) {
        const flowing = call.write({
          sandbox: toWireSandbox(change.record),
          snapshot: change.snapshot,
          removed: change.removed ?? false,
        });
        // Respect the client's flow control: a slow reader backs up into the feed's
        // bounded buffer, not into this process's memory.
        if (!flowing && !abort.signal.aborted) {
          await new Promise<void>((resolve) => {
            call.once("drain", resolve);
            abort.signal.addEventListener("abort", () => resolve(), { once: true });
          });
        }
      }
      call.end();
    })().catch((err) => {
      if (!abort.signal.aborted) call.destroy(toServiceError(err, "Sandboxes/Watch") as Error);
    });
  };
}

export function sandboxesHandlers(service: SandboxService) {
  return {
    watch: watchHandler(service),
    get: unary<{ id: string; namespace: string }, GetResponse>("Sandboxes/Get", async (call) => {
      const key = sandboxKey(call, service, call.request.id, call.request.namespace);
      return { sandbox: toWireSandbox(await service.get(key)), agent: agentStatus(service) };
    }),
    list: unary<{ state: WireState; namespace: string }, ListResponse>(
      "Sandboxes/List",
      async (call) => {
        const namespace = namespaceOf(call, service, call.request.namespace);
        const state = stateFilter(call.request.state);
        const records = await service.list({ namespace, state });
        return { sandboxes: records.map(toWireSandbox), agent: agentStatus(service) };
      },
    ),
  };
}
