/**
 * Sessions with containerd: how the tracker learns what happens.
 *
 * Stream session (the default), in this order:
 * 1. subscribe, then publish a marker and wait until it comes back: the subscription is
 *    live (a gRPC stream gives no such signal; anything published earlier is lost);
 * 2. list, and record what the listing proves;
 * 3. publish a second marker: once it is back, every event published before the listing
 *    has been dispatched, and only then is absence read as a lost exit — never before,
 *    however long the marker takes (a lagging stream may still carry the real exit);
 * 4. dispatch events live; repeat 2-3 every resync interval as a safety net.
 * A marker not back within the marker timeout is logged and waited for in the
 * background; one not back within the give-up time ends the session (resubscribe).
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
import { errorText, type Listing, type SandboxTracker } from "./tracker.ts";

const log = logger("controller");

/** Applies every event containerd published before the call, then resolves. */
export type Flush = (signal: AbortSignal) => Promise<void>;

export interface SessionContext {
  client: ContainerdClient;
  tracker: SandboxTracker;
  namespace: string;
  /** A marker slower than this is logged; inference waits for it in the background. */
  markerTimeoutMs: number;
  /** A marker not back after this ends the session: the stream is not delivering. */
  markerGiveUpMs: number;
  resyncIntervalMs: number;
  pollIntervalMs: number;
  /** Called once the session is synced and live, with its flush (stream sessions). */
  onConnected(version: string, flush?: Flush): void;
  /** Called when containerd cannot be reached (the session then waits for it). */
  onUnreachable(error: string): void;
}

/**
 * Resolves once containerd answers. When it is not reachable, reports it once and waits
 * for the channel to connect — grpc-js retries the socket every few hundred ms — instead
 * of polling. Failed sandbox jobs are retried as soon as it answers.
 */
async function reachContainerd(ctx: SessionContext, signal: AbortSignal): Promise<string> {
  let version: string;
  try {
    version = (await ctx.client.version({ signal })).version;
  } catch (err) {
    if (!(err instanceof UnavailableError)) throw err;
    ctx.onUnreachable(errorText(err));
    version = (await ctx.client.version({ signal, waitForReady: true })).version;
  }
  ctx.tracker.retryNow();
  return version;
}

/** Resolves true if `promise` settles within `ms`, false otherwise (it keeps running). */
async function within(promise: Promise<unknown>, ms: number, signal: AbortSignal) {
  const timer = new AbortController();
  try {
    return await Promise.race([
      promise.then(() => true, () => true),
      delay(ms, AbortSignal.any([signal, timer.signal])).then(() => false),
    ]);
  } finally {
    timer.abort();
  }
}

/** Runs one stream session; rejects when the stream, a marker or a resync fails. */
export async function streamSession(ctx: SessionContext, signal: AbortSignal): Promise<never> {
  const session = new AbortController();
  const sessionSignal = AbortSignal.any([signal, session.signal]);
  const markers = new Map<string, () => void>();
  // Whatever ends the session — the stream, a marker given up on — rejects this.
  const ended = Promise.withResolvers<never>();
  ended.promise.catch(() => {});
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
    (async () => {
      for await (const event of events) dispatch(event);
      throw new UnavailableError("containerd closed the event stream");
    })().catch(ended.reject);
    // Until this first marker is back a publish may be lost: it is published again until
    // it is, and every later marker is published only after it.
    const live = awaitMarker(ctx, markers, { republish: true, signal: sessionSignal });
    live.catch(ended.reject);
    const marker = (signal = sessionSignal) =>
      live.then(() => awaitMarker(ctx, markers, { republish: false, signal }));

    // The listing whose absences are inferred when its marker is back; a newer one wins.
    let latest: Listing | undefined;
    const resync = async () => {
      const listing = await ctx.tracker.list(sessionSignal);
      latest = listing;
      await ctx.tracker.applyListing(listing);
      const inferred = marker().then(() =>
        listing === latest ? ctx.tracker.inferAbsences(listing) : undefined
      );
      inferred.catch(ended.reject);
      if (!await within(inferred, ctx.markerTimeoutMs, sessionSignal)) {
        log.warn(
          "containerd's event stream lags: the marker published after a listing is not back " +
            "within {ms} ms; exits are inferred from that listing only once it is",
          { ms: ctx.markerTimeoutMs },
        );
      }
    };

    await Promise.race([
      (async () => {
        if (await within(live, ctx.markerTimeoutMs, sessionSignal)) {
          log.debug("subscribed to containerd's events (the marker came back)");
        } else {
          log.warn(
            "subscription marker not back within {ms} ms; recording what containerd lists, " +
              "inferring nothing until it is",
            { ms: ctx.markerTimeoutMs },
          );
        }
        await resync();
      })(),
      ended.promise,
    ]);
    ctx.onConnected(
      version,
      (flushSignal) => marker(AbortSignal.any([sessionSignal, flushSignal])),
    );
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
    return await ended.promise;
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
 * and every event published before the marker has been handed to the tracker. Rejects
 * with UnavailableError when it is not back within the give-up time.
 */
async function awaitMarker(
  ctx: SessionContext,
  markers: Map<string, () => void>,
  options: { republish: boolean; signal: AbortSignal },
): Promise<void> {
  const nonce = crypto.randomUUID();
  const arrived = Promise.withResolvers<void>();
  markers.set(nonce, arrived.resolve);
  const done = new AbortController();
  const stop = AbortSignal.any([options.signal, done.signal]);
  try {
    // Until the subscription is known to be live a publish can race its registration in
    // containerd and be lost: publish again, backing off, until one copy comes back.
    // Once it is live, events arrive in order and one publish is enough.
    const publishing = (async () => {
      const backoff = new Backoff({ initialMs: 25, maxMs: 400, jitter: 0 });
      do {
        await ctx.client.publish(ctx.namespace, MARKER_TOPIC, markerPayload(nonce), {
          signal: stop,
        });
        if (options.republish) await delay(backoff.next(), stop);
      } while (options.republish);
    })();
    publishing.catch(() => {});
    const gaveUp = delay(ctx.markerGiveUpMs, stop).then(() => {
      throw new UnavailableError(
        `containerd's event stream did not deliver podsandboxd's marker within ${ctx.markerGiveUpMs} ms; subscribing again`,
      );
    });
    await Promise.race([
      arrived.promise,
      // A publish that fails (containerd gone) ends the wait with its error.
      publishing.then(() => arrived.promise),
      gaveUp,
    ]);
  } finally {
    done.abort();
    markers.delete(nonce);
  }
}
