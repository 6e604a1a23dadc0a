/** A named network, stored as data (one JSON file per network). */
export interface NetworkRecord {
  /** 64 hex digits, like Docker's network ids. */
  id: string;
  name: string;
  /** `bridge`; `host` and `null` only for Docker's pre-defined `host` and `none` (the engine's). */
  driver: 'bridge' | 'host' | 'null';
  /** The host's bridge interface (at most 15 characters; empty for `host` and `none`). */
  bridge: string;
  /** IPv4 CIDR, e.g. 10.213.7.0/24. */
  subnet: string;
  /** The bridge's own address in the subnet: the containers' gateway. */
  gateway: string;
  /** No default route out of the network (Docker's --internal). */
  internal: boolean;
  labels: Record<string, string>;
  /** ISO time. */
  created: string;
}

/**
 * dockerd's host switches. With `ipForward` and `ipMasq` off corral changes no host sysctl
 * and adds no NAT rule for outbound traffic; with `iptables` off it adds no rule at all
 * (and so publishes no port).
 */
export interface HostSwitches {
  iptables: boolean;
  ipForward: boolean;
  ipMasq: boolean;
}

/** A published port: `[IP:]HOST:CTR[/tcp|udp]` or `CTR` (a free host port). */
export interface PortMapping {
  hostIP: string;
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
}

/** What the engine asks for when it attaches a container to a network. */
export interface AttachOptions {
  /** A fixed address in the network's subnet (Docker's --ip). */
  ip?: string;
  /** A fixed MAC address (Docker's --mac-address). */
  mac?: string;
  ports?: PortMapping[];
  /** Names other containers of the network know this one by, besides its own. */
  aliases?: string[];
}

/** One container's place on one network, kept until the container leaves it. */
export interface Attachment {
  containerId: string;
  /** The container's name, for the peers' /etc/hosts. */
  name: string;
  network: string;
  networkId: string;
  netns: string;
  ifname: string;
  /** The exact configuration list the plugins were given on ADD, replayed on DEL. */
  conflist: ConfList;
  runtimeConfig: Record<string, unknown>;
  /** The ADD result; absent while ADD runs (or when it never finished). */
  result?: import('./cni/invoke.js').CniResult;
  /** Filled from the result. */
  ip?: string;
  mac?: string;
  ports: PortMapping[];
  aliases: string[];
}

export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: ({ type: string; capabilities?: Record<string, boolean> } & Record<string, unknown>)[];
}
