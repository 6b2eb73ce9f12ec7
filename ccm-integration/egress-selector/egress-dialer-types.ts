// What a control-plane component gets from one selection of an EgressSelectorConfiguration:
// TCP connections to cluster addresses, and Node HTTP agents whose sockets come from them.
import type http from 'node:http';
import type https from 'node:https';
import type { Duplex } from 'node:stream';

export type EgressSelectionName = 'cluster' | 'controlplane' | 'etcd';

export interface EgressDialOptions {
  signal?: AbortSignal;
  /** Bound on the dial until the target is connected (default 30 s, as kube-apiserver). */
  timeoutMs?: number;
}

export interface EgressDialer {
  /** The selection this dialer serves, and how it reaches targets. */
  readonly selection: EgressSelectionName;
  readonly proxyProtocol: 'Direct' | 'HTTPConnect' | 'GRPC';
  /** A connected byte stream to host:port (through the tunnel unless Direct). */
  dial(host: string, port: number, options?: EgressDialOptions): Promise<Duplex>;
  /** An http.Agent whose connections go through this dialer; keep-alive works. */
  httpAgent(options?: http.AgentOptions): http.Agent;
  /** An https.Agent whose TLS runs inside connections from this dialer. */
  httpsAgent(options?: https.AgentOptions): https.Agent;
  /** Closes shared tunnels; connections already handed out are destroyed. */
  close(): void;
}
