/**
 * Sessions with containerd: how the tracker learns what happens.
 *
 * Stream session (the default), in this order:
 * 1. subscribe, then publish a marker and wait until it comes back: the subscription is
 *    live (a gRPC stream gives no such signal; anything published earlier is lost);
 * 2. list, and record what the listing proves;
 * 3. publish a second marker: once it is back, every event published before the listing
 *    has been dispatched, and only then is absence read as a lost exit;
 * 4. dispatch events live; repeat 2-3 every resync interval as a safety net.
 *
 * Poll session (hosts without event subscription): list every poll interval and apply
 * it the same way; exits are seen only while containerd still holds the stopped task.
 *
 * @module
 */
import { quoteFilterValue } from "../containerd/filters.ts";
import { MARKER_TOPIC, markerPayload, WATCHED_TOPICS } from "../containerd/events.ts";
import type { ContainerdClient, ContainerdEvent } from "../containerd/types.ts";
import { UnavailableError } from "../errors.ts";
import { logger } from "../log.ts";
import { Backoff, delay } from "./backoff.ts";
import { errorText, type SandboxTracker } from "./tracker.ts";

const log = logger("controller");

export interface SessionContext {
  client: ContainerdClient;
  tracker: SandboxTracker;
  namespace: string;
  markerTimeoutMs: number;
  resyncIntervalMs: number;
  pollIntervalMs: number;
  /** Called once the session is synced and live. */
  onConnected(version: string): void;
  /** Called when containerd cannot be reached (the session then waits for it). */
  onUnreachable(error: string): void;
}

/**
 * Resolves once containerd answers. When it is not reachable, reports it once and waits
 * for the channel to connect — grpc-js retries the socket every few hundred ms — instead
 * of polling.
 */
async function reachContainerd(ctx: SessionContext, signal: AbortSignal): Promise<string> {
  try {
    return (await ctx.client.version({ signal })).version;
  } catch (err) {
    if (!(err instanceof UnavailableError)) throw err;
    ctx.onUnreachable(errorText(err));
    return (await ctx.client.version({ signal, waitForReady: true })).version;
  }
}

/** Runs one stream session; rejects when the stream or a resync fails. */
export async function streamSession(ctx: SessionContext, signal: AbortSignal): Promise<never> {
  const session = new AbortController();
  const sessionSignal = AbortSignal.any([signal, session.signal]);
  const markers = new Map<string, () => void>();
  try {
    const version = await reachContainerd(ctx, sessionSignal);
    const ns = `namespace==${quoteFilterValue(ctx.namespace)}`;
    const filters = [...WATCHED_TOPICS, MARKER_TOPIC].map((t) =>
      `${ns},topic==${quoteFilterValue(t)}`
    );
    const events = ctx.client.subscribe(filters, { signal: sessionSignal });
    const dispatch = (event: ContainerdEvent) => {
      if (event.namespace !== ctx.namespace) return;
      if (event.kind === "marker") markers.get(event.nonce)?.();
      else ctx.tracker.dispatch(event);
    };
    const streamEnded = (async () => {
      for await (const event of events) dispatch(event);
      throw new UnavailableError("containerd closed the event stream");
    })();
    streamEnded.catch(() => {});
    const marker = () => awaitMarker(ctx, markers, sessionSignal);
    const resync = async () => {
      const listing = await ctx.tracker.list(sessionSignal);
      await ctx.tracker.applyListing(listing);
      await marker();
      await ctx.tracker.inferAbsences(listing);
    };
    await Promise.race([
      marker().then(() => {
        log.debug("subscribed to containerd's events (the marker came back)");
        return resync();
      }),
      streamEnded,
    ]);
    ctx.onConnected(version);
    if (ctx.resyncIntervalMs > 0) {
      (async () => {
        while (!sessionSignal.aborted) {
          try {
            await delay(ctx.resyncIntervalMs, sessionSignal);
            await resync();
          } catch (err) {
            if (!sessionSignal.aborted) {
              log.warn("periodic resync failed: {error}", { error: errorText(err) });
            }
          }
        }
      })();
    }
    return await streamEnded;
  } finally {
    session.abort();
  }
}

/** Runs one poll session; rejects when a listing fails. */
export async function pollSession(ctx: SessionContext, signal: AbortSignal): Promise<never> {
  const version = await reachContainerd(ctx, signal);
  let connected = false;
  for (;;) {
    const listing = await ctx.tracker.list(signal);
    await ctx.tracker.applyListing(listing);
    await ctx.tracker.inferAbsences(listing);
    if (!connected) {
      connected = true;
      ctx.onConnected(version);
    }
    await delay(ctx.pollIntervalMs, signal);
  }
}

/**
 * Publishes a marker and resolves once it has been dispatched: the subscription is live
 * and every event published before the marker has been handed to the tracker.
 */
async function awaitMarker(
  ctx: SessionContext,
  markers: Map<string, () => void>,
  signal: AbortSignal,
): Promise<void> {
  const nonce = crypto.randomUUID();
  let seen = false;
  const arrived = new Promise<void>((resolve) =>
    markers.set(nonce, () => {
      seen = true;
      resolve();
    })
  );
  const done = new AbortController();
  const stop = AbortSignal.any([signal, done.signal]);
  try {
    // A publish can race the subscription's registration in containerd and be lost:
    // publish again, backing off, until one copy comes back.
    const publishing = (async () => {
      const backoff = new Backoff({ initialMs: 25, maxMs: 400, jitter: 0 });
      while (!seen) {
        await ctx.client.publish(ctx.namespace, MARKER_TOPIC, markerPayload(nonce), {
          signal: stop,
        });
        await delay(backoff.next(), stop);
      }
    })();
    publishing.catch(() => {});
    const timedOut = await Promise.race([
      arrived.then(() => false),
      publishing.then(() => false),
      delay(ctx.markerTimeoutMs, stop).then(() => true),
    ]);
    if (timedOut) {
      log.warn(
        "subscription marker not received within {ms} ms; continuing without the guarantee that no event was missed",
        { ms: ctx.markerTimeoutMs },
      );
    }
  } finally {
    done.abort();
    markers.delete(nonce);
  }
}
