/**
 * The agent's Prometheus metrics (names `podsandboxd_*`): what the controller, store and
 * containerd client report through their hooks, and gauges read from the running agent
 * at scrape time.
 *
 * @module
 */
import type { Controller, ControllerObserver } from "../controller/controller.ts";
import { type Counter, type Histogram, Registry } from "./registry.ts";

const LATENCY_BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

export class AgentMetrics {
  readonly registry = new Registry();
  readonly exitsRecorded: Counter;
  readonly exitHandling: Histogram;
  readonly connects: Counter;
  readonly resyncs: Counter;
  readonly storeCommit: Histogram;
  readonly containerdCalls: Counter;
  readonly eventsSkipped: Counter;

  constructor() {
    const r = this.registry;
    this.exitsRecorded = r.counter(
      "podsandboxd_exits_recorded_total",
      "Sandbox exits recorded, by how they were learned (event, shim, task-status, unreadable, task-missing).",
    );
    this.exitHandling = r.histogram(
      "podsandboxd_exit_handling_seconds",
      "Time from receiving a sandbox's exit event to its durable record (including the task delete with --reap=always).",
      LATENCY_BUCKETS,
    );
    this.connects = r.counter(
      "podsandboxd_containerd_connects_total",
      "Sessions with containerd that subscribed and synced (the first connect and every reconnect).",
    );
    this.resyncs = r.counter(
      "podsandboxd_resyncs_total",
      "Reconciliations of the store with containerd's container and task lists.",
    );
    this.storeCommit = r.histogram(
      "podsandboxd_store_commit_seconds",
      "Duration of the store's atomic commits.",
      LATENCY_BUCKETS,
    );
    this.containerdCalls = r.counter(
      "podsandboxd_containerd_calls_total",
      "Calls made to containerd, by method (tasks.Delete and tasks.Kill only with --reap=always).",
    );
    this.eventsSkipped = r.counter(
      "podsandboxd_events_skipped_total",
      "Events from containerd skipped as unusable, by reason (unknown-type, malformed, bad-id).",
    );
  }

  /** Hooks for the controller. */
  controllerObserver(): ControllerObserver {
    return {
      exitRecorded: (source, seconds) => {
        this.exitsRecorded.inc({ source });
        if (seconds !== undefined) this.exitHandling.observe(seconds);
      },
      connected: () => this.connects.inc(),
      resynced: () => this.resyncs.inc(),
      eventSkipped: (reason) => this.eventsSkipped.inc({ reason }),
    };
  }

  /** Gauges read from the running controller at scrape time. */
  bind(controller: Controller): void {
    const r = this.registry;
    r.gauge(
      "podsandboxd_sandboxes",
      "Sandboxes the agent has records of, by state.",
      async () => {
        const counts = { SANDBOX_READY: 0, SANDBOX_NOTREADY: 0 };
        for (const record of await controller.list({ namespace: controller.namespace })) {
          counts[record.state]++;
        }
        return [
          { labels: { state: "ready" }, value: counts.SANDBOX_READY },
          { labels: { state: "notready" }, value: counts.SANDBOX_NOTREADY },
        ];
      },
    );
    r.gauge(
      "podsandboxd_containerd_connected",
      "1 while the agent is connected to containerd and caught up, else 0.",
      () => (controller.status.state === "connected" ? 1 : 0),
    );
    r.gauge(
      "podsandboxd_pending_retries",
      "Sandbox exit handlings that failed and wait for their next attempt.",
      () => controller.retryingCount,
    );
    r.gauge("podsandboxd_waiters", "Blocked Wait calls.", () => controller.waiterCount);
    r.gauge("podsandboxd_watchers", "Connected Watch streams.", () => controller.watcherCount);
    r.gauge(
      "podsandboxd_shim_waits",
      "Sandboxes whose shim the agent waits on for their exit (--shim-wait).",
      () => controller.shimWaitCount,
    );
    r.gauge(
      "podsandboxd_shim_connections",
      "Connections to shims open for those waits.",
      () => controller.shimConnectionCount,
    );
  }
}
