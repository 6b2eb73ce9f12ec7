// gRPC metadata keys of the konnectivity protocol. gRPC lowercases keys on the wire.
export const MetadataKey = {
  /** agent → server: the agent's ID. */
  agentID: 'agentid',
  /** agent → server: URL-query encoded identifiers (host=…&ipv4=…&cidr=…&default-route=true). */
  agentIdentifiers: 'agentidentifiers',
  /** agent → server: `Bearer <token>`. */
  authorization: 'authorization',
  /** server → agent (response headers). */
  serverID: 'serverid',
  serverCount: 'servercount',
  /**
   * Our extension negotiation (not upstream): the client side lists what it supports, the
   * server answers in its response headers with what both will use. Upstream peers never
   * send it and never receive an extension packet.
   */
  extensions: 'konnectivity-ts-extensions',
  /** With flow-control: the window (bytes) the sender of this header grants per connection. */
  connectionWindow: 'konnectivity-ts-connection-window',
} as const;

/** Extensions beyond the upstream protocol, negotiated per stream. */
export const Extension = {
  /**
   * TCP half-close: a DATA packet with no data and error "EOF" means "the sender will
   * write no more on this connection"; the connection ends when both sides have sent it,
   * or at CLOSE_REQ/CLOSE_RSP as usual.
   */
  halfClose: 'half-close',
  /** Per-connection credit on the shared agent stream: see flow-control.ts. */
  flowControl: 'flow-control',
} as const;

export const HALF_CLOSE_MARKER = 'EOF';

export function parseExtensions(value: string | undefined): Set<string> {
  const set = new Set<string>();
  if (!value) return set;
  for (const part of value.split(',')) {
    const name = part.trim();
    if (name) set.add(name);
  }
  return set;
}
