// What identity binding needs of a Node, and nothing more: a cache of these stays small in a
// cluster of thousands of Nodes, whose objects run to tens of KiB each (status.images).
// Read from listed objects (client-node models) and watch events (plain JSON) alike: the
// fields used here have the same names in both.
import { canonicalIp, parseCidr, type AgentIdentifiers } from '../../proto/agent-identifiers.js';

export interface NodeFacts {
  name: string;
  uid: string;
  /** Lower-cased Hostname addresses. */
  hostnames: string[];
  /** Canonical InternalIP and ExternalIP addresses. */
  addresses: string[];
  /** spec.podCIDRs (or the older spec.podCIDR). */
  podCidrs: AgentIdentifiers['cidrs'];
}

const ROUTABLE = new Set(['InternalIP', 'ExternalIP']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function field(obj: unknown, key: string): unknown {
  return isRecord(obj) ? obj[key] : undefined;
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

/** The facts of a Node object, or undefined when it has no name. */
export function nodeFactsOf(node: unknown): NodeFacts | undefined {
  const metadata = field(node, 'metadata');
  const name = text(field(metadata, 'name'));
  if (name === '') return undefined;
  const facts: NodeFacts = {
    name,
    uid: text(field(metadata, 'uid')),
    hostnames: [],
    addresses: [],
    podCidrs: [],
  };
  const addresses = field(field(node, 'status'), 'addresses');
  for (const a of Array.isArray(addresses) ? (addresses as unknown[]) : []) {
    const type = text(field(a, 'type'));
    const value = text(field(a, 'address'));
    if (type === 'Hostname' && value !== '') addUnique(facts.hostnames, value.toLowerCase());
    const ip = ROUTABLE.has(type) ? canonicalIp(value) : undefined;
    if (ip) addUnique(facts.addresses, ip);
  }
  const spec = field(node, 'spec');
  const cidrs = field(spec, 'podCIDRs');
  const cidrTexts = Array.isArray(cidrs) ? (cidrs as unknown[]).map(text) : [text(field(spec, 'podCIDR'))];
  for (const c of cidrTexts) {
    const cidr = parseCidr(c);
    if (cidr) facts.podCidrs.push(cidr);
  }
  return facts;
}

function addUnique(list: string[], value: string): void {
  if (!list.includes(value)) list.push(value);
}

/** Whether two facts would give the same verdicts (so a Node update that changes neither is quiet). */
export function sameFacts(a: NodeFacts | undefined, b: NodeFacts | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  const cidrs = (f: NodeFacts) => f.podCidrs.map((c) => `${c.address}/${String(c.prefix)}`).join(',');
  return (
    a.uid === b.uid &&
    a.hostnames.join(',') === b.hostnames.join(',') &&
    a.addresses.join(',') === b.addresses.join(',') &&
    cidrs(a) === cidrs(b)
  );
}
