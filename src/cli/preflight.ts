/**
 * Before serving: does the agent's Deno permission set cover every path and socket this
 * configuration uses? One clear error listing what is missing, instead of a failure deep
 * inside a library at the first use.
 *
 * @module
 */
import type { ServeConfig } from "../config/serve_options.ts";

/** The configuration needs a permission the process was not granted. */
export class MissingPermissionError extends Error {
  override name = "MissingPermissionError";
}

interface Need {
  descriptor: Deno.PermissionDescriptor;
  why: string;
}

function describe(d: Deno.PermissionDescriptor): string {
  switch (d.name) {
    case "read":
    case "write":
      return `${d.name} access to ${d.path}`;
    case "net":
      return `net access to ${d.host}`;
    default:
      return d.name;
  }
}

export async function checkPermissions(config: ServeConfig, configFile?: string): Promise<void> {
  const needs: Need[] = [
    { descriptor: { name: "read", path: config.state }, why: "--state" },
    { descriptor: { name: "write", path: config.state }, why: "--state" },
    { descriptor: { name: "read", path: config.socket }, why: "--socket" },
    { descriptor: { name: "write", path: config.socket }, why: "--socket" },
    { descriptor: { name: "net", host: `unix:${config.socket}` }, why: "--socket" },
    { descriptor: { name: "net", host: `unix:${config.address}` }, why: "--address" },
  ];
  if (configFile) needs.push({ descriptor: { name: "read", path: configFile }, why: "--config" });
  const metrics = config.metricsAddress;
  if (metrics && "path" in metrics) {
    needs.push(
      { descriptor: { name: "write", path: metrics.path }, why: "--metrics-address" },
      { descriptor: { name: "net", host: `unix:${metrics.path}` }, why: "--metrics-address" },
    );
  } else if (metrics) {
    const host = metrics.hostname.includes(":") ? `[${metrics.hostname}]` : metrics.hostname;
    needs.push({
      descriptor: { name: "net", host: `${host}:${metrics.port}` },
      why: "--metrics-address",
    });
  }
  const missing: string[] = [];
  for (const need of needs) {
    if ((await Deno.permissions.query(need.descriptor)).state !== "granted") {
      missing.push(`  ${describe(need.descriptor)} (${need.why})`);
    }
  }
  if (missing.length > 0) {
    throw new MissingPermissionError(
      "the agent's Deno permissions do not cover this configuration:\n" + missing.join("\n") +
        '\nThe agent runs with the permission set "permissions.agent" of deno.json (compiled into ' +
        "the binary): use the paths it grants (/var/lib/podsandboxd, /run/podsandboxd, " +
        "/run/containerd/containerd.sock, loopback), or extend the set and rebuild.",
    );
  }
}
