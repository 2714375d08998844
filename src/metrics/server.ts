/**
 * Serves the Prometheus text exposition on GET /metrics, on a TCP address
 * (`127.0.0.1:9477`) or a unix socket (`unix:/run/podsandboxd/metrics.sock`).
 *
 * @module
 */
import type { Registry } from "./registry.ts";

export type MetricsAddress = { hostname: string; port: number } | { path: string };

/** Parses --metrics-address; RangeError naming the value and the accepted forms. */
export function parseMetricsAddress(text: string): MetricsAddress {
  if (text.startsWith("unix:")) {
    const path = text.slice("unix:".length).replace(/^\/\/(?=\/)/, "");
    if (path.startsWith("/")) return { path };
  } else {
    const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
    if (m && Number(m[2]) > 0 && Number(m[2]) < 65536) {
      return { hostname: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) };
    }
  }
  throw new RangeError(
    `invalid address ${
      JSON.stringify(text)
    }: use HOST:PORT (e.g. 127.0.0.1:9477) or unix:/path/to/socket`,
  );
}

export function describeAddress(address: MetricsAddress): string {
  return "path" in address ? `unix:${address.path}` : `${address.hostname}:${address.port}`;
}

/** Starts the metrics endpoint; close it with `shutdown()`. */
export function serveMetrics(address: MetricsAddress, registry: Registry): Deno.HttpServer {
  const handler = async (request: Request): Promise<Response> => {
    const { pathname } = new URL(request.url);
    if (pathname !== "/metrics") return new Response("not found: try /metrics\n", { status: 404 });
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405 });
    }
    return new Response(await registry.render(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  };
  const quiet = () => {};
  return "path" in address
    ? Deno.serve({ path: address.path, onListen: quiet }, handler)
    : Deno.serve({ hostname: address.hostname, port: address.port, onListen: quiet }, handler);
}
