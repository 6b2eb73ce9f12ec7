// The connected agents and the choice of one for a dial through the --proxy-strategies chain.
// destHost lookups go through an index (host or IP → agents), and default/defaultRoute pick
// from a large pool by two random choices, so a dial costs the same with ten agents or ten
// thousand; only agents with cidr identifiers are scanned.
import net from 'node:net';
import { canonicalIp, type AgentIdentifiers } from '../../proto/agent-identifiers.js';
import type { Backend } from './backend.js';
import type { ProxyStrategy } from './proxy-strategies.js';
import type { ServerMetrics } from '../metrics.js';

export type PickResult =
  { ok: true; backend: Backend; strategy: ProxyStrategy } | { ok: false; reason: string };

export class BackendManager {
  private readonly backends = new BackendPool();
  /** host name or canonical IP → agents that declared it. */
  private readonly byHost = new Map<string, Set<Backend>>();
  private readonly withCidrs = new Set<Backend>();
  private readonly defaultRoute = new BackendPool();
  /** Agents that sent DRAIN, so readiness and the gauge need no scan of every agent. */
  private readonly draining = new Set<Backend>();
  /**
   * agentID → its streams, oldest first. One of them is routed to: the oldest that is not
   * draining (the oldest, if all are). As upstream, never a later stream while the first
   * serves: an agent that reaches a server twice (several servers behind one address) closes
   * the later stream as soon as it reads our server ID, and a dial sent down it meanwhile
   * fails. A later stream takes over when the first goes or drains (a new agent process with
   * the same ID, during a rollout that surges).
   */
  private readonly byAgent = new Map<string, Backend[]>();
  /** agentID → the stream in the pools and indexes. */
  private readonly routed = new Map<string, Backend>();

  constructor(
    private readonly metrics: ServerMetrics,
    private readonly strategies: readonly ProxyStrategy[] = ['default'],
  ) {}

  add(backend: Backend): void {
    const streams = this.byAgent.get(backend.agentID);
    if (streams?.includes(backend)) return;
    if (streams) streams.push(backend);
    else this.byAgent.set(backend.agentID, [backend]);
    this.settle(backend.agentID);
  }

  remove(backend: Backend): void {
    const streams = this.byAgent.get(backend.agentID);
    const at = streams?.indexOf(backend) ?? -1;
    if (!streams || at < 0) return;
    streams.splice(at, 1);
    if (streams.length === 0) this.byAgent.delete(backend.agentID);
    if (this.routed.get(backend.agentID) === backend) this.unroute(backend);
    this.settle(backend.agentID);
  }

  /** Routes the agent's dials to the stream that should have them now. */
  private settle(agentID: string): void {
    const streams = this.byAgent.get(agentID) ?? [];
    const want = streams.find((b) => !b.draining) ?? streams[0];
    const now = this.routed.get(agentID);
    if (want !== now) {
      if (now) this.unroute(now);
      if (want) {
        this.routed.set(agentID, want);
        this.backends.add(want);
        this.index(want);
      }
    }
    if (want?.draining) this.draining.add(want);
    this.updateGauges();
  }

  private unroute(backend: Backend): void {
    this.routed.delete(backend.agentID);
    this.backends.delete(backend);
    this.unindex(backend);
    this.draining.delete(backend);
  }

  /**
   * Routes dials to the agent by these identifiers from now on: identity binding withdrew a
   * claim (or gave one back). Open connections are not touched.
   */
  reroute(backend: Backend, identifiers: AgentIdentifiers): void {
    const indexed = this.backends.has(backend);
    if (indexed) this.unindex(backend);
    backend.setIdentifiers(identifiers);
    if (indexed) this.index(backend);
  }

  private index(backend: Backend): void {
    const ids = backend.identifiers;
    for (const key of [...ids.hosts, ...ids.ips]) {
      let set = this.byHost.get(key);
      if (!set) this.byHost.set(key, (set = new Set()));
      set.add(backend);
    }
    if (ids.cidrs.length > 0) this.withCidrs.add(backend);
    if (ids.defaultRoute) this.defaultRoute.add(backend);
  }

  private unindex(backend: Backend): void {
    const ids = backend.identifiers;
    for (const key of [...ids.hosts, ...ids.ips]) {
      const set = this.byHost.get(key);
      set?.delete(backend);
      if (set?.size === 0) this.byHost.delete(key);
    }
    this.withCidrs.delete(backend);
    this.defaultRoute.delete(backend);
  }

  /** The agent sent DRAIN: it keeps its connections but gets no new dial. */
  setDraining(backend: Backend): void {
    if (backend.draining) return;
    backend.draining = true;
    this.settle(backend.agentID);
  }

  /** An agent for a dial to `host`, through the strategy chain in order. */
  pick(host: string): PickResult {
    for (const strategy of this.strategies) {
      // A draining agent serves only when the strategy has no other: it still answers dials
      // until it exits, and upstream servers route to it regardless.
      const candidates = this.candidates(strategy, host);
      const backend =
        candidates instanceof BackendPool && candidates.size > SCAN_LIMIT
          ? twoChoices(candidates)
          : leastLoaded(candidates);
      if (backend) {
        this.metrics.strategyDials.labels(strategy).inc();
        return { ok: true, backend, strategy };
      }
      this.metrics.strategyMisses.labels(strategy).inc();
    }
    const ready = this.readyCount;
    const reason =
      ready === 0
        ? 'no agent available to serve the dial'
        : `no agent can serve ${host} with proxy strategies ${this.strategies.join(',')} (${ready} agents ready)`;
    return { ok: false, reason };
  }

  private candidates(strategy: ProxyStrategy, host: string): Iterable<Backend> | BackendPool {
    switch (strategy) {
      case 'default':
        return this.backends;
      case 'defaultRoute':
        return this.defaultRoute;
      case 'destHost':
        return this.matching(host);
    }
  }

  private matching(host: string): Backend[] {
    const key = canonicalIp(host) ?? host.toLowerCase();
    const out = [...(this.byHost.get(key) ?? [])];
    const family = net.isIP(key);
    if (family !== 0) {
      const fam = family === 4 ? 'ipv4' : 'ipv6';
      for (const b of this.withCidrs) {
        if (!out.includes(b) && b.cidrList().check(key, fam)) out.push(b);
      }
    }
    return out;
  }

  /** Agents connected (by agent ID; an agent with two streams counts once, as upstream). */
  get size(): number {
    return this.backends.size;
  }

  /** Agents that may get a new dial (connected, not draining). */
  get readyCount(): number {
    return this.backends.size - this.draining.size;
  }

  /** Every agent stream, an agent's first stream before its later ones. */
  list(): Backend[] {
    return [...this.byAgent.values()].flat();
  }

  private updateGauges(): void {
    this.metrics.readyBackends.set(this.backends.size);
    this.metrics.drainingBackends.set(this.draining.size);
  }
}

/** Pools up to this size are scanned for the least loaded agent; larger ones are sampled. */
const SCAN_LIMIT = 16;
/** Random draws to find two live agents in a large pool before scanning it after all. */
const MAX_DRAWS = 16;

/**
 * The less loaded of two live agents drawn at random ("power of two choices": close to the
 * least loaded of all, at a constant cost). A pool that is mostly draining or closed is scanned.
 */
function twoChoices(pool: BackendPool): Backend | undefined {
  let first: Backend | undefined;
  for (let draw = 0; draw < MAX_DRAWS; draw++) {
    const b = pool.sample();
    if (!b || b.closed || b.draining || b === first) continue;
    if (!first) {
      first = b;
      continue;
    }
    return loadOf(b) < loadOf(first) ? b : first;
  }
  return first ?? leastLoaded(pool);
}

function loadOf(b: Backend): number {
  return b.connections.size + b.pendingDials;
}

/**
 * The agent with the fewest open and pending connections, ties at random. Draining agents are
 * chosen only when every candidate drains.
 */
function leastLoaded(candidates: Iterable<Backend>): Backend | undefined {
  const live = new LoadPick();
  const draining = new LoadPick();
  for (const b of candidates) {
    if (b.closed) continue;
    (b.draining ? draining : live).offer(b);
  }
  return live.best ?? draining.best;
}

class LoadPick {
  best: Backend | undefined;
  private bestLoad = Infinity;
  private ties = 0;

  offer(b: Backend): void {
    const load = loadOf(b);
    if (load < this.bestLoad) {
      this.best = b;
      this.bestLoad = load;
      this.ties = 1;
    } else if (load === this.bestLoad && Math.random() * ++this.ties < 1) {
      this.best = b; // reservoir sampling: each tied agent equally likely
    }
  }
}

/** A set of agents with a uniform random draw in O(1): an array and each member's position. */
class BackendPool implements Iterable<Backend> {
  private readonly items: Backend[] = [];
  private readonly position = new Map<Backend, number>();

  get size(): number {
    return this.items.length;
  }

  has(b: Backend): boolean {
    return this.position.has(b);
  }

  add(b: Backend): void {
    if (this.position.has(b)) return;
    this.position.set(b, this.items.length);
    this.items.push(b);
  }

  /** Swaps the last member into the removed one's place. */
  delete(b: Backend): boolean {
    const at = this.position.get(b);
    if (at === undefined) return false;
    const last = this.items.pop();
    this.position.delete(b);
    if (last && last !== b) {
      this.items[at] = last;
      this.position.set(last, at);
    }
    return true;
  }

  sample(): Backend | undefined {
    return this.items[Math.floor(Math.random() * this.items.length)];
  }

  [Symbol.iterator](): Iterator<Backend> {
    return this.items[Symbol.iterator]();
  }
}
