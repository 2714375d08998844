/**
 * The tests' containerd config per version: format 2 for 1.6/1.7, format 3 (the CRI split
 * into runtime, images and the gRPC service) for 2.1. Parsed back as TOML, so a misplaced
 * key or a syntax error shows here rather than as a containerd that ignores it.
 */
import { parse } from "smol-toml";
import { assertEquals, assertThrows } from "../harness/assert.ts";
import { containerdConfig } from "../harness/containerd_config.ts";
import { parseContainerdVersion } from "../harness/containerd_version.ts";

const base = { dir: "/tmp/psd-x", socket: "/tmp/psd-x/c.sock", ttrpcSocket: "/tmp/psd-x/t.sock" };
const cri = { sandboxImage: "docker.io/local/pause:latest", cniConfDir: "/c", cniBinDir: "/b" };

// deno-lint-ignore no-explicit-any
const toml = (text: string) => parse(text) as any;

Deno.test("format 2 for 1.6 and 1.7: the CRI is one plugin; off unless asked for", () => {
  for (const version of ["1.6", "1.7"] as const) {
    const off = toml(containerdConfig(version, base));
    assertEquals(off.version, 2);
    assertEquals(off.disabled_plugins, ["io.containerd.grpc.v1.cri"]);
    assertEquals(off.grpc.address, base.socket);
    const on = toml(containerdConfig(version, { ...base, cri }));
    assertEquals(on.disabled_plugins, []);
    const p = on.plugins["io.containerd.grpc.v1.cri"];
    assertEquals(p.sandbox_image, cri.sandboxImage);
    assertEquals(p.cni.bin_dir, "/b");
    assertEquals(p.disable_tcp_service, true);
  }
  // NRI exists from 1.7: kept off its machine-wide socket.
  assertEquals(toml(containerdConfig("1.6", base)).plugins["io.containerd.nri.v1.nri"], undefined);
  assertEquals(
    toml(containerdConfig("1.7", base)).plugins["io.containerd.nri.v1.nri"].disable,
    true,
  );
});

Deno.test("format 3 for 2.1: runtime, images and the gRPC service in their own sections", () => {
  const off = toml(containerdConfig("2.1", base));
  assertEquals(off.version, 3);
  assertEquals(off.disabled_plugins, [
    "io.containerd.grpc.v1.cri",
    "io.containerd.cri.v1.runtime",
    "io.containerd.cri.v1.images",
  ]);
  const on = toml(containerdConfig("2.1", { ...base, cri, state: "/run/s" }));
  assertEquals(on.state, "/run/s");
  const runtime = on.plugins["io.containerd.cri.v1.runtime"];
  assertEquals(runtime.containerd.runtimes.runc.sandboxer, "podsandbox");
  assertEquals(runtime.cni.bin_dirs, ["/b"]);
  assertEquals(on.plugins["io.containerd.cri.v1.images"].pinned_images.sandbox, cri.sandboxImage);
  assertEquals(on.plugins["io.containerd.grpc.v1.cri"].stream_server_port, "0");
  assertEquals(on.plugins["io.containerd.nri.v1.nri"].disable, true);
});

Deno.test("PODSANDBOXD_CONTAINERD accepts 1.6, 1.7 and 2.1 and names them otherwise", () => {
  assertEquals(parseContainerdVersion(" 2.1"), "2.1");
  assertThrows(
    () => parseContainerdVersion("2.0"),
    RangeError,
    /PODSANDBOXD_CONTAINERD=2.0: not a containerd version the tests can run \(accepted: 1.6, 1.7, 2.1\)/,
  );
});
