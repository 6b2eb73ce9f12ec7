// Which of an agent's identifier claims its node backs. Pure: claims, the agent's node and
// what the Node cache knows of it in; one verdict per claim out. The rules:
//   host=          the node's name, or a Hostname address of the Node (an IP: as ipv4/ipv6)
//   ipv4= / ipv6=  an InternalIP or ExternalIP address of the Node
//   cidr=          inside one of the Node's spec.podCIDRs
//   default-route  never (only accounts listed in --agents-allowed-any-identifier, which are
//                  not checked at all)
// An agent whose node is unknown backs none of its claims.
import net from 'node:net';
import { canonicalIp, type AgentIdentifiers } from '../../proto/agent-identifiers.js';
import type { NodeFacts } from './node-facts.js';
import type { NodeView } from './node-watch.js';

export type Cidr = AgentIdentifiers['cidrs'][number];

export type Claim =
  | { type: 'host'; value: string }
  | { type: 'ipv4' | 'ipv6'; value: string }
  | { type: 'cidr'; value: Cidr }
  | { type: 'default-route' };

export type ClaimType = Claim['type'];

export type Verdict =
  | { claim: Claim; status: 'allowed' }
  /** refused: the node does not back it; pending: the Node is not in the cache yet. */
  | { claim: Claim; status: 'refused' | 'pending'; reason: string };

export interface AgentNode {
  name: string;
  /** The Node's uid when the credential names one (pod-bound tokens do). */
  uid?: string;
  source: 'token' | 'cert';
}

export function claimsOf(ids: AgentIdentifiers): Claim[] {
  const claims: Claim[] = [];
  for (const value of ids.hosts) claims.push({ type: 'host', value });
  for (const value of ids.ips) claims.push({ type: net.isIPv4(value) ? 'ipv4' : 'ipv6', value });
  for (const value of ids.cidrs) claims.push({ type: 'cidr', value });
  if (ids.defaultRoute) claims.push({ type: 'default-route' });
  return claims;
}

export function identifiersOf(claims: readonly Claim[]): AgentIdentifiers {
  const ids: AgentIdentifiers = { hosts: [], ips: [], cidrs: [], defaultRoute: false };
  for (const c of claims) {
    if (c.type === 'host') ids.hosts.push(c.value);
    else if (c.type === 'ipv4' || c.type === 'ipv6') ids.ips.push(c.value);
    else if (c.type === 'cidr') ids.cidrs.push(c.value);
    else ids.defaultRoute = true;
  }
  return ids;
}

/** "ipv4=10.0.0.1", "cidr=10.244.1.0/24", "default-route=true": as the agent wrote it. */
export function claimText(c: Claim): string {
  switch (c.type) {
    case 'cidr':
      return `cidr=${c.value.address}/${String(c.value.prefix)}`;
    case 'default-route':
      return 'default-route=true';
    default:
      return `${c.type}=${c.value}`;
  }
}

/**
 * One verdict per claim, in order. `node` undefined: the node is unknown, and `unknownWhy`
 * says why; `view` is what the Node cache holds for the node.
 */
export function checkClaims(
  claims: readonly Claim[],
  node: AgentNode | undefined,
  view: NodeView | undefined,
  unknownWhy: string,
): Verdict[] {
  return claims.map((claim): Verdict => {
    if (!node) return { claim, status: 'refused', reason: `the agent's node is unknown: ${unknownWhy}` };
    if (claim.type === 'default-route') {
      return {
        claim,
        status: 'refused',
        reason: 'default-route=true is only for the accounts of --agents-allowed-any-identifier',
      };
    }
    if (claim.type === 'host' && claim.value === node.name) return { claim, status: 'allowed' };
    const facts = nodeFacts(node, view);
    if (typeof facts === 'string') return { claim, status: 'refused', reason: facts };
    if (facts === undefined)
      return { claim, status: 'pending', reason: `waiting for Node ${node.name} in the Node cache` };
    const reason = mismatch(claim, facts);
    return reason === undefined ? { claim, status: 'allowed' } : { claim, status: 'refused', reason };
  });
}

/** The Node's facts; undefined while the cache syncs; a string: why there are none. */
function nodeFacts(node: AgentNode, view: NodeView | undefined): NodeFacts | string | undefined {
  switch (view?.state) {
    case undefined:
    case 'syncing':
      return undefined;
    case 'unavailable':
      return view.reason;
    case 'absent':
      return `Node ${node.name} does not exist`;
    case 'found':
      if (node.uid !== undefined && view.facts.uid !== '' && view.facts.uid !== node.uid) {
        return `Node ${node.name} (uid ${view.facts.uid}) is not the one the agent's token names (uid ${node.uid})`;
      }
      return view.facts;
  }
}

/** Why the Node does not back the claim, or undefined when it does. */
function mismatch(claim: Exclude<Claim, { type: 'default-route' }>, n: NodeFacts): string | undefined {
  switch (claim.type) {
    case 'host': {
      const ip = canonicalIp(claim.value);
      if (ip !== undefined) return n.addresses.includes(ip) ? undefined : notAddress(n);
      if (n.hostnames.includes(claim.value)) return undefined;
      return `not the name or a Hostname address of Node ${n.name} (${[n.name, ...n.hostnames].join(', ')})`;
    }
    case 'ipv4':
    case 'ipv6':
      return n.addresses.includes(claim.value) ? undefined : notAddress(n);
    case 'cidr':
      return n.podCidrs.some((p) => cidrWithin(claim.value, p))
        ? undefined
        : `not inside the podCIDRs of Node ${n.name} (${n.podCidrs.map((p) => `${p.address}/${String(p.prefix)}`).join(', ') || 'none'})`;
  }
}

function notAddress(n: NodeFacts): string {
  return `not an InternalIP or ExternalIP address of Node ${n.name} (${n.addresses.join(', ') || 'none'})`;
}

/** Whether every address of `inner` lies in `outer`. */
export function cidrWithin(inner: Cidr, outer: Cidr): boolean {
  if (inner.family !== outer.family || inner.prefix < outer.prefix) return false;
  const block = new net.BlockList();
  block.addSubnet(outer.address, outer.prefix, outer.family);
  // inner's prefix is at least outer's, so inner's block is inside whichever outer-sized block holds any of its addresses.
  return block.check(inner.address, inner.family);
}
