// Choosing an agent for a dial: least loaded in small pools, two random choices in large ones,
// draining agents only when nothing else can serve, and destHost through the index.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { BackendManager } from '../../../server/backend/backend-manager.js';
import { Backend, type AgentStream } from '../../../server/backend/backend.js';
import { ServerMetrics } from '../../../server/metrics.js';
import { createRegistry } from '../../../common/metrics.js';
import { parseAgentIdentifiers } from '../../../proto/agent-identifiers.js';

/** An agent stream that is never written to: picking an agent does not touch it. */
const idleStream: AgentStream = {
  transport: 'grpc',
  peer: '127.0.0.1:1',
  link: undefined,
  isClosed: false,
  writableEnded: false,
  onPacket: () => undefined,
  onEnd: () => undefined,
  onClose: () => undefined,
  header: () => undefined,
  sendHeaders: () => undefined,
  write: () => true,
  end: () => undefined,
  fail: () => undefined,
  pause: () => undefined,
  resume: () => undefined,
};

const metrics = new ServerMetrics(createRegistry(false));
const log = pino({ level: 'silent' });

function agent(id: string, identifiers = ''): Backend {
  const ids = parseAgentIdentifiers(identifiers).identifiers;
  return new Backend(id, ids, '127.0.0.1:1', new Set(), { local: 0, peer: 0 }, idleStream, log, metrics);
}

/** A destHost manager holding two streams of one agent (host=node-1), the first added first. */
function twoStreamsOfOneAgent(): [BackendManager, Backend, Backend] {
  const m = new BackendManager(metrics, ['destHost']);
  const first = agent('node-1-agent', 'host=node-1');
  const later = agent('node-1-agent', 'host=node-1');
  m.add(first);
  m.add(later);
  return [m, first, later];
}

/** Routes `dials` dials through `manager`, each one staying open (its agent's load grows). */
function routeDials(manager: BackendManager, host: string, dials: number): Map<string, number> {
  const load = new Map<string, number>();
  for (let i = 0; i < dials; i++) {
    const picked = manager.pick(host);
    assert.ok(picked.ok);
    picked.backend.pendingDials++;
    load.set(picked.backend.agentID, (load.get(picked.backend.agentID) ?? 0) + 1);
  }
  return load;
}

describe('BackendManager', () => {
  it('spreads dials evenly over a small pool (least loaded of all)', () => {
    const m = new BackendManager(metrics, ['default']);
    for (let i = 0; i < 5; i++) m.add(agent(`a${String(i)}`));
    const load = routeDials(m, '10.0.0.1', 50);
    assert.deepEqual([...load.values()], [10, 10, 10, 10, 10]);
  });

  it('keeps a large pool balanced with two random choices, and never picks a draining agent while others serve', () => {
    const m = new BackendManager(metrics, ['default']);
    const agents = Array.from({ length: 1000 }, (_, i) => agent(`a${String(i)}`));
    for (const a of agents) m.add(a);
    for (const a of agents.slice(0, 500)) m.setDraining(a);
    const load = routeDials(m, '10.0.0.1', 5000);
    for (const a of agents.slice(0, 500))
      assert.equal(load.get(a.agentID), undefined, 'draining agent chosen');
    const loads = agents.slice(500).map((a) => load.get(a.agentID) ?? 0);
    // 10 dials per live agent on average. Two choices hold the busiest agent to 12-13 (a
    // uniformly random pick leaves the busiest near 20); every agent gets some.
    const [least, most] = [Math.min(...loads), Math.max(...loads)];
    assert.ok(least >= 2 && most <= 14, `loads ${String(least)}..${String(most)}`);
  });

  it('falls back to a draining agent only when every agent drains, and removes agents in O(1) order-free', () => {
    const m = new BackendManager(metrics, ['default']);
    const agents = Array.from({ length: 40 }, (_, i) => agent(`a${String(i)}`));
    for (const a of agents) {
      m.add(a);
      m.setDraining(a);
    }
    for (const a of agents.slice(0, 39)) m.remove(a);
    assert.equal(m.size, 1);
    const picked = m.pick('10.0.0.1');
    assert.ok(picked.ok);
    assert.equal(picked.backend.agentID, 'a39');
    m.remove(agents[39] as Backend);
    const none = m.pick('10.0.0.1');
    assert.deepEqual(none, { ok: false, reason: 'no agent available to serve the dial' });
  });

  it('routes destHost through the index among thousands of agents, then default', () => {
    const m = new BackendManager(metrics, ['destHost', 'default']);
    for (let i = 0; i < 5000; i++) m.add(agent(`a${String(i)}`, `host=node-${String(i)}`));
    const picked = m.pick('node-4242');
    assert.ok(picked.ok);
    assert.equal(picked.backend.agentID, 'a4242');
    assert.equal(picked.strategy, 'destHost');
    const other = m.pick('elsewhere.example');
    assert.ok(other.ok);
    assert.equal(other.strategy, 'default');
  });

  it("routes an agent's dials to its first stream only; a later one takes over when the first goes (upstream's rule)", () => {
    const m = new BackendManager(metrics, ['destHost', 'default']);
    const first = agent('twice', 'host=node-1');
    const later = agent('twice', 'host=node-1');
    const other = agent('other', 'host=node-2');
    m.add(first);
    m.add(later);
    m.add(other);
    assert.equal(m.size, 2, 'an agent with two streams counts once');
    assert.deepEqual(m.list(), [first, later, other]);
    // Over many dials the default strategy never picks the later stream, however idle it is.
    for (let i = 0; i < 200; i++) {
      const picked = m.pick('elsewhere.example');
      assert.ok(picked.ok);
      assert.notEqual(picked.backend, later);
      picked.backend.pendingDials++;
    }
    const byHost = m.pick('node-1');
    assert.ok(byHost.ok && byHost.backend === first);

    m.remove(first);
    const after = m.pick('node-1');
    assert.ok(after.ok, 'the later stream now serves the agent');
    assert.equal(after.backend, later);
    assert.equal(after.strategy, 'destHost');
    assert.equal(m.size, 2);

    // Removing a stream that was never routed to leaves the routed one in place.
    const third = agent('other', 'host=node-2');
    m.add(third);
    m.remove(third);
    const still = m.pick('node-2');
    assert.ok(still.ok && still.backend === other);
  });

  it('carries DRAIN and rerouted identifiers of a later stream over when it takes over', () => {
    const [m, first, later] = twoStreamsOfOneAgent();
    m.setDraining(later);
    m.reroute(later, parseAgentIdentifiers('host=node-9').identifiers);
    assert.equal(m.readyCount, 1, 'the first stream is not draining');
    m.remove(first);
    assert.equal(m.readyCount, 0, 'the stream that took over drains');
    const picked = m.pick('node-9');
    assert.ok(picked.ok, 'a draining agent still serves when no other can');
    assert.equal(picked.backend, later);
    assert.equal(m.pick('node-1').ok, false, 'the withdrawn claim is not routed');
  });

  it('hands an agent whose first stream drains to its later stream at once (a new process with the same ID)', () => {
    const [m, old, fresh] = twoStreamsOfOneAgent();
    const before = m.pick('node-1');
    assert.ok(before.ok && before.backend === old, 'the first stream serves while it is not draining');
    m.setDraining(old);
    const after = m.pick('node-1');
    assert.ok(after.ok && after.backend === fresh, 'the draining stream hands over');
    assert.equal(m.readyCount, 1);
    m.remove(fresh);
    const last = m.pick('node-1');
    assert.ok(last.ok && last.backend === old, 'and serves again, draining, when nothing else can');
    assert.equal(m.readyCount, 0);
  });
});
