// Which nodes have an agent connected: GET <server>/agents on every proxy-server's admin port,
// merged (in HA an agent connected to any server counts), cached for agentCacheTTL. A server
// that does not answer is logged and skipped; when none answers the listing fails, which the
// provider reports as an error (never as "instance gone").
import type { Logger } from '../../../../common/log.js';
import { errorText } from '../../../../common/log.js';

/** One node as the agents describe it: a `host` identifier names it. */
export interface ListedNode {
  /** The node name: a host identifier, lower-cased by the server. */
  name: string;
  /** The agents' ipv4 and ipv6 identifiers, in the order listed, without repeats. */
  ips: string[];
  agentIDs: string[];
}

export interface AgentListing {
  /** When the listing was made (ms since the epoch). */
  fetchedAt: number;
  nodes: ReadonlyMap<string, ListedNode>;
  /** The servers that answered. */
  servers: string[];
}

export interface AgentDirectoryOptions {
  /** Admin base URLs, without a trailing slash. */
  servers: string[];
  ttlMs: number;
  /** Bound on each GET /agents. */
  requestTimeoutMs: number;
  log: Logger;
}

/** The part of a server's /agents answer we read (server/proxy-server.ts agentsRoute()). */
interface ServerAgents {
  agentID: string;
  hosts: string[];
  ips: string[];
}

export class AgentDirectory {
  private cached: AgentListing | undefined;
  private inFlight: Promise<AgentListing> | undefined;
  private readonly listeners: ((listing: AgentListing) => void)[] = [];
  /** Per server: whether its last GET failed, so a failing server is logged once, not per call. */
  private readonly failing = new Map<string, boolean>();

  constructor(private readonly options: AgentDirectoryOptions) {}

  /** Called with every listing fetched (not with cached ones). */
  onListing(listener: (listing: AgentListing) => void): void {
    this.listeners.push(listener);
  }

  /** The current listing: cached when younger than the TTL; one fetch at a time is shared. */
  async listing(signal: AbortSignal): Promise<AgentListing> {
    signal.throwIfAborted();
    const cached = this.cached;
    if (cached && Date.now() - cached.fetchedAt < this.options.ttlMs) return cached;
    this.inFlight ??= this.fetchAll().finally(() => {
      this.inFlight = undefined;
    });
    return abortable(this.inFlight, signal);
  }

  private async fetchAll(): Promise<AgentListing> {
    const { servers } = this.options;
    const results = await Promise.allSettled(servers.map((s) => this.fetchServer(s)));
    const nodes = new Map<string, ListedNode>();
    const answered: string[] = [];
    const failures: string[] = [];
    results.forEach((result, i) => {
      const server = servers[i] ?? '';
      if (result.status === 'rejected') {
        failures.push(`${server}: ${errorText(result.reason)}`);
        this.noteFailure(server, result.reason);
        return;
      }
      this.noteSuccess(server);
      answered.push(server);
      for (const agent of result.value) mergeAgent(nodes, agent);
    });
    if (answered.length === 0) {
      throw new Error(`no proxy-server answered GET /agents (${failures.join('; ')})`);
    }
    const listing: AgentListing = { fetchedAt: Date.now(), nodes, servers: answered };
    this.cached = listing;
    for (const listener of this.listeners) listener(listing);
    return listing;
  }

  private async fetchServer(server: string): Promise<ServerAgents[]> {
    const res = await fetch(`${server}/agents`, {
      headers: { accept: 'application/json' },
      signal: AbortSignal.timeout(this.options.requestTimeoutMs),
    });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${body.slice(0, 200)}`);
    return parseAgents(body);
  }

  private noteFailure(server: string, err: unknown): void {
    if (this.failing.get(server) === true) return;
    this.failing.set(server, true);
    this.options.log.warn(
      { server, err: errorText(err) },
      'proxy-server does not answer GET /agents; skipped',
    );
  }

  private noteSuccess(server: string): void {
    if (this.failing.get(server) === true)
      this.options.log.info({ server }, 'proxy-server answers GET /agents again');
    this.failing.set(server, false);
  }
}

function mergeAgent(nodes: Map<string, ListedNode>, agent: ServerAgents): void {
  for (const host of agent.hosts) {
    let node = nodes.get(host);
    if (!node) {
      node = { name: host, ips: [], agentIDs: [] };
      nodes.set(host, node);
    }
    for (const ip of agent.ips) if (!node.ips.includes(ip)) node.ips.push(ip);
    if (!node.agentIDs.includes(agent.agentID)) node.agentIDs.push(agent.agentID);
  }
}

/** Reads a /agents body; anything not of the expected shape fails that server's answer. */
export function parseAgents(body: string): ServerAgents[] {
  const doc: unknown = JSON.parse(body);
  if (!isRecord(doc) || !Array.isArray(doc.agents)) throw new Error('the answer has no "agents" list');
  return doc.agents.map((item: unknown, i): ServerAgents => {
    if (!isRecord(item) || typeof item.agentID !== 'string' || !isRecord(item.identifiers)) {
      throw new Error(`agents[${i}] has no agentID and identifiers`);
    }
    const ids = item.identifiers;
    return {
      agentID: item.agentID,
      hosts: strings(ids.hosts, `agents[${i}].identifiers.hosts`).map((h) => h.toLowerCase()),
      ips: strings(ids.ips, `agents[${i}].identifiers.ips`),
    };
  });
}

function strings(value: unknown, what: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new Error(`${what} is not a list of strings`);
  }
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `promise`, or the abort of `signal` if that comes first (the shared fetch goes on). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}
