// The konnectivity provider's view of the agents: /agents of several proxy-servers (real HTTP
// servers on loopback) merged and cached, silent servers skipped; and how long a node has been
// without an agent, from the listings.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  AgentDirectory,
  type AgentListing,
} from '../../../ccm-integration/ccm/cloud/konnectivity/agent-directory.js';
import { NodePresence } from '../../../ccm-integration/ccm/cloud/konnectivity/node-presence.js';
import { createLogger } from '../../../common/log.js';

interface FakeAdmin {
  url: string;
  requests: number;
  body: string;
  close(): Promise<void>;
}

/** A proxy-server admin port as far as /agents goes; `hang` never answers. */
async function fakeAdmin(agents: object[] | string, options: { hang?: boolean } = {}): Promise<FakeAdmin> {
  const admin: FakeAdmin = {
    url: '',
    requests: 0,
    body: typeof agents === 'string' ? agents : JSON.stringify({ serverID: 's', serverCount: 1, agents }),
    close: () => Promise.resolve(),
  };
  const server = http.createServer((req, res) => {
    admin.requests++;
    if (options.hang) return;
    res.writeHead(req.url === '/agents' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(admin.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  admin.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  admin.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return admin;
}

const agent = (agentID: string, hosts: string[], ips: string[]) => ({
  agentID,
  identifiers: { hosts, ips, cidrs: [], defaultRoute: false },
  peer: '127.0.0.1:1',
  connectedSince: new Date().toISOString(),
  draining: false,
});

const log = createLogger({ component: 'test', level: 'silent' });
const signal = new AbortController().signal;

describe('agent directory', () => {
  let one: FakeAdmin;
  let two: FakeAdmin;
  let hanging: FakeAdmin;
  let garbled: FakeAdmin;
  before(async () => {
    // HA: agent-a is connected to both servers, agent-b to the second only.
    one = await fakeAdmin([agent('agent-a', ['node-a'], ['10.0.0.1'])]);
    two = await fakeAdmin([
      agent('agent-a', ['node-a'], ['10.0.0.1']),
      agent('agent-b', ['Node-B'], ['10.0.0.2', 'fd00::2']),
    ]);
    hanging = await fakeAdmin([], { hang: true });
    garbled = await fakeAdmin('{"agents": [{"agentID": 7}]}');
  });
  after(async () => {
    await Promise.all([one, two, hanging, garbled].map((a) => a.close()));
  });

  const directory = (servers: string[], ttlMs = 60_000) =>
    new AgentDirectory({ servers, ttlMs, requestTimeoutMs: 300, log });

  it('merges the agents of every server that answers, and skips the others', async () => {
    const listing = await directory([one.url, hanging.url, two.url, garbled.url]).listing(signal);
    assert.deepEqual(listing.servers, [one.url, two.url]);
    assert.deepEqual(
      [...listing.nodes.values()],
      [
        { name: 'node-a', ips: ['10.0.0.1'], agentIDs: ['agent-a'] },
        { name: 'node-b', ips: ['10.0.0.2', 'fd00::2'], agentIDs: ['agent-b'] },
      ],
    );
  });

  it('fails when no server answers', async () => {
    await assert.rejects(directory([hanging.url, garbled.url]).listing(signal), (err: unknown) => {
      assert.ok(err instanceof Error);
      assert.ok(err.message.startsWith('no proxy-server answered GET /agents ('), err.message);
      assert.ok(
        err.message.includes(`${garbled.url}: agents[0] has no agentID and identifiers`),
        err.message,
      );
      assert.ok(err.message.includes(hanging.url), err.message);
      return true;
    });
  });

  it('serves a listing from its cache within the TTL, one fetch for concurrent callers', async () => {
    const cached = directory([one.url]);
    const before = one.requests;
    const listings = await Promise.all([
      cached.listing(signal),
      cached.listing(signal),
      cached.listing(signal),
    ]);
    assert.equal(one.requests - before, 1);
    assert.equal(await cached.listing(signal), listings[0]);
    assert.equal(one.requests - before, 1);

    const uncached = directory([one.url], 0);
    await uncached.listing(signal);
    await uncached.listing(signal);
    assert.equal(one.requests - before, 3);
  });

  it('tells its listeners of every listing fetched', async () => {
    const seen: AgentListing[] = [];
    const d = directory([two.url], 0);
    d.onListing((l) => seen.push(l));
    const first = await d.listing(signal);
    const second = await d.listing(signal);
    assert.deepEqual(seen, [first, second]);
  });
});

describe('node presence', () => {
  const listing = (fetchedAt: number, ...names: string[]): AgentListing => ({
    fetchedAt,
    servers: ['s'],
    nodes: new Map(names.map((name) => [name, { name, ips: [], agentIDs: [] }])),
  });

  it('counts a node no listing had from the first listing', () => {
    const presence = new NodePresence();
    const first = listing(1000, 'node-a');
    presence.observe(first);
    presence.observe(listing(5000, 'node-a'));
    assert.equal(presence.missingFor('node-x', listing(5000, 'node-a'), 9000), 8000);
    assert.equal(presence.missingFor('node-a', listing(5000, 'node-a'), 9000), 0);
  });

  it('counts a node that left from the first listing without it, and forgets that once it is back', () => {
    const presence = new NodePresence();
    presence.observe(listing(1000, 'node-a'));
    // No listing between 1 s and 30 s: when the agent left in between is unknown.
    const gone = listing(30_000);
    presence.observe(gone);
    presence.observe(listing(31_000));
    assert.equal(presence.missingFor('node-a', listing(31_000), 32_000), 2000);
    assert.equal(presence.lastSeenAt('node-a'), 1000);
    const back = listing(40_000, 'node-a');
    presence.observe(back);
    assert.equal(presence.missingFor('node-a', back, 41_000), 0);
    presence.observe(listing(50_000));
    assert.equal(presence.missingFor('node-a', listing(50_000), 50_500), 500);
  });
});
