/**
 * A containerd 2.1 node whose CRI runs pods through podsandboxd as its sandbox
 * controller, configured as an operator would: `[proxy_plugins.podsandboxd]` (type
 * "sandbox") on the agent's socket, and a runtime handler whose sandboxer is podsandboxd.
 * The agent runs as users start it (deno task podsandboxd serve --sandboxer …) with the
 * node's private paths.
 *
 * @module
 */
import { join } from "node:path";
import { AgentProcess } from "./agent.ts";
import { CRI_NAMESPACE, CriNode } from "./cri.ts";
import { PAUSE_IMAGE } from "./image.ts";
import { run } from "./process.ts";

/** The sandboxer name (the proxy plugin's) and the CRI runtime handler that uses it. */
export const SANDBOXER = "podsandboxd";
export const HANDLER = "psd";

/** containerd config (format 3) wiring the CRI's handler to the agent's socket. */
export function proxyConfig(agentSocket: string): string {
  const rt = `plugins."io.containerd.cri.v1.runtime"`;
  return [
    `[proxy_plugins.${SANDBOXER}]`,
    `  type = "sandbox"`,
    `  address = ${JSON.stringify(agentSocket)}`,
    `[${rt}.containerd.runtimes.${HANDLER}]`,
    `  runtime_type = "io.containerd.runc.v2"`,
    `  sandboxer = ${JSON.stringify(SANDBOXER)}`,
  ].join("\n");
}

/** Where Debian's containernetworking-plugins are. */
export const CNI_BIN_DIR = "/usr/lib/cni";

/**
 * A CNI network of its own: a bridge (named for this run; the CRI insists on an eth0 with
 * an address) with addresses from host-local, kept under `dir`. No test sends traffic.
 */
function cniNetwork(dir: string): { conflist: string; bridge: string } {
  const tag = crypto.randomUUID().slice(0, 8);
  const bridge = `psd${tag}`;
  const [a, b] = crypto.getRandomValues(new Uint8Array(2));
  return {
    bridge,
    conflist: JSON.stringify({
      cniVersion: "1.0.0",
      name: `psd-${tag}`,
      plugins: [{
        type: "bridge",
        bridge,
        isGateway: true,
        ipMasq: false,
        ipam: {
          type: "host-local",
          ranges: [[{ subnet: `10.${200 + (a % 50)}.${b}.0/24` }]],
          dataDir: join(dir, "cni-ipam"),
        },
      }],
    }),
  };
}

export class SandboxerNode {
  private constructor(
    readonly node: CriNode,
    readonly dir: string,
    public agent: AgentProcess,
    readonly agentArgs: string[],
    readonly bridge?: string,
  ) {}

  /** containerd 2.1 with the CRI and the proxy plugin, then the agent serving it. */
  static async start(
    options: { agentArgs?: string[]; cni?: boolean } = {},
  ): Promise<SandboxerNode> {
    const dir = await Deno.makeTempDir({ prefix: "psd-sbx-" });
    const socket = join(dir, "agent.sock");
    const network = options.cni ? cniNetwork(dir) : undefined;
    let node: CriNode | undefined;
    try {
      // containerd dials its proxy plugins lazily: the agent may come up after it.
      node = await CriNode.start({
        version: "2.1",
        extraConfig: proxyConfig(socket),
        cni: network && { conflist: network.conflist, binDir: CNI_BIN_DIR },
      });
      const agentArgs = [
        "--sandboxer",
        SANDBOXER,
        "--pause-image",
        PAUSE_IMAGE,
        "--containerd-root",
        join(node.containerd.dir, "root"),
        // This machine's root lacks CAP_SYS_RESOURCE (as the CRI's own config says).
        "--restrict-oom-score-adj",
        ...(options.agentArgs ?? []),
      ];
      const agent = await SandboxerNode.#agent(node, dir, agentArgs);
      return new SandboxerNode(node, dir, agent, agentArgs, network?.bridge);
    } catch (err) {
      await node?.stop();
      if (network) await removeLink(network.bridge);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  static #agent(node: CriNode, dir: string, args: string[]): Promise<AgentProcess> {
    return AgentProcess.start({
      containerdSocket: node.socket,
      dir,
      namespace: CRI_NAMESPACE,
      args,
    });
  }

  /** Starts the agent again on the same state (after it stopped or was killed). */
  async restartAgent(): Promise<AgentProcess> {
    this.agent = await SandboxerNode.#agent(this.node, this.dir, this.agentArgs);
    return this.agent;
  }

  get cri() {
    return this.node.cri;
  }

  /** The agent's warnings and errors so far, for a failing test's message. */
  problems(): string {
    return this.agent.logs.filter((l) => l.level === "WARNING" || l.level === "ERROR")
      .slice(-30).map((l) => JSON.stringify(l)).join("\n");
  }

  /** Runs `body`; a failure carries the agent's warnings and errors. */
  async explained<T>(body: () => Promise<T>): Promise<T> {
    try {
      return await body();
    } catch (err) {
      // The sandboxes the error names: what the agent logged about them.
      const ids = String(err).match(/[0-9a-f]{64}/g) ?? [];
      const about = this.agent.logs.filter((l) => ids.some((id) => JSON.stringify(l).includes(id)))
        .map((l) => `${l["@timestamp"]} ${l.level} ${l.message}`).join("\n");
      const containerdLog = await Deno.readTextFile(
        join(this.node.containerd.dir, "containerd.log"),
      )
        .catch(() => "");
      const theirs = containerdLog.split("\n").filter((l) => ids.some((id) => l.includes(id)))
        .slice(-40).join("\n");
      throw new Error(
        `${err}\nthe agent's warnings and errors:\n${this.problems()}\n` +
          `the agent's log about ${ids.join(", ") || "it"}:\n${about}\n` +
          `containerd's log about it:\n${theirs}`,
        { cause: err },
      );
    }
  }

  /** Removes every pod through the CRI, stops the agent and containerd, removes the state. */
  async stop(): Promise<void> {
    try {
      await this.node.cri.removeAllPods().catch((err) => console.error(`pod clean-up: ${err}`));
      await this.agent.stop();
    } finally {
      await this.node.stop();
      if (this.bridge) await removeLink(this.bridge);
      await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    }
  }
}

/** Deletes the network link the CNI bridge plugin made (if it did). */
async function removeLink(name: string): Promise<void> {
  await run("ip", ["link", "del", name], { allowFailure: true });
}
