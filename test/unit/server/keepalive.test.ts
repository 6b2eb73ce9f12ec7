// The keepalive sweeper against real HTTP/2 connections on loopback, its clock driven by the
// test: pings only connections that were quiet for a whole interval.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { http2Target, KeepaliveSweeper } from '../../../server/keepalive.js';
import { waitFor } from '../../support/wait.js';

const INTERVAL = 1_000_000; // the sweeper's own timer never fires during the test

/** A sweeper on the test's clock (`clock.now`), recording the timeouts it declares. */
function clockedSweeper() {
  const clock = { now: 0 };
  const timeouts: number[] = [];
  const sweeper = new KeepaliveSweeper({ intervalMs: INTERVAL, timeoutMs: 500 }, () => clock.now);
  const watch = (s: http2.ServerHttp2Session) =>
    sweeper.watch(
      s,
      http2Target(s, (ms) => timeouts.push(ms)),
    );
  return { sweeper, watch, timeouts, clock };
}

describe('KeepaliveSweeper', () => {
  let server: http2.Http2Server;
  const serverSessions: http2.ServerHttp2Session[] = [];
  const clients: http2.ClientHttp2Session[] = [];

  before(async () => {
    server = http2.createServer();
    server.on('session', (s) => serverSessions.push(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(async () => {
    for (const c of clients) c.destroy();
    for (const s of serverSessions) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  /** A client connection and the server's side of it; counts the PINGs the client receives. */
  async function connection() {
    const before = serverSessions.length;
    const client = http2.connect(`http://127.0.0.1:${String((server.address() as AddressInfo).port)}`);
    clients.push(client);
    const pings = { received: 0 };
    client.on('ping', () => pings.received++);
    await waitFor('server session', () => serverSessions.length > before || undefined);
    const session = serverSessions[before];
    assert.ok(session);
    return { client, session, pings };
  }

  it('pings a connection quiet for a whole interval, not one that read meanwhile', async () => {
    const { sweeper, watch, timeouts, clock } = clockedSweeper();
    const quiet = await connection();
    const busy = await connection();
    watch(quiet.session);
    const busyReads = watch(busy.session);
    assert.equal(sweeper.size, 2);

    clock.now = INTERVAL - 1;
    sweeper.sweep();
    busyReads.reads++; // data arrived on the busy connection since
    clock.now = INTERVAL;
    sweeper.sweep();
    assert.equal(sweeper.pingsOutstanding, 1);
    await waitFor('quiet connection pinged', () => quiet.pings.received === 1 || undefined);
    await waitFor('ping answered', () => sweeper.pingsOutstanding === 0 || undefined);
    assert.equal(busy.pings.received, 0, 'a connection that is reading is not pinged');

    // The answer came back: no second ping, no timeout, until another quiet interval passes.
    clock.now = INTERVAL + 400;
    sweeper.sweep();
    clock.now = INTERVAL + 600;
    sweeper.sweep();
    assert.deepEqual(timeouts, []);
    assert.equal(quiet.pings.received, 1);
    assert.equal(quiet.session.destroyed, false);

    sweeper.forget(quiet.session);
    sweeper.forget(busy.session);
    assert.equal(sweeper.size, 0);
  });

  it('destroys a connection whose ping is not answered within the timeout', async () => {
    const { sweeper, watch, timeouts, clock } = clockedSweeper();
    const c = await connection();
    watch(c.session);
    // The sweeps below run in one go: the answer cannot arrive in between.
    clock.now = INTERVAL;
    sweeper.sweep();
    assert.equal(sweeper.pingsOutstanding, 1);
    clock.now = INTERVAL + 499;
    sweeper.sweep();
    assert.equal(c.session.destroyed, false);
    clock.now = INTERVAL + 500;
    sweeper.sweep();
    assert.deepEqual(timeouts, [500]);
    assert.equal(c.session.destroyed, true);
    assert.equal(sweeper.size, 0);
  });

  it('paces pings to its rate, and skips a queued connection that read before its turn', async () => {
    let now = 0;
    // 8 a second: two per 250 ms pacer step.
    const sweeper = new KeepaliveSweeper(
      { intervalMs: INTERVAL, timeoutMs: 500, maxPingsPerSecond: 8 },
      () => now,
    );
    const conns = [];
    for (let i = 0; i < 5; i++) conns.push(await connection()); // one at a time: connection() counts sessions
    const reads = conns.map((c) =>
      sweeper.watch(
        c.session,
        http2Target(c.session, () => undefined),
      ),
    );
    now = INTERVAL;
    sweeper.sweep();
    assert.equal(sweeper.pingsWaiting, 5);
    assert.equal(sweeper.pingsOutstanding, 0, 'nothing sent by the sweep itself');
    sweeper.pace();
    assert.equal(sweeper.pingsOutstanding, 2);
    assert.equal(sweeper.pingsWaiting, 3);
    (reads[2] as { reads: number }).reads++; // the third is busy again before its turn
    sweeper.pace();
    assert.equal(sweeper.pingsOutstanding, 4, 'the third was skipped, the fourth and fifth sent');
    assert.equal(sweeper.pingsWaiting, 0);
    await waitFor('pings answered', () => sweeper.pingsOutstanding === 0 || undefined);
    assert.deepEqual(
      conns.map((c) => c.pings.received),
      [1, 1, 0, 1, 1],
    );
    for (const c of conns) sweeper.forget(c.session);
  });

  it('watches nothing with an interval of 0', async () => {
    const sweeper = new KeepaliveSweeper({ intervalMs: 0, timeoutMs: 500 });
    const c = await connection();
    sweeper.watch(
      c.session,
      http2Target(c.session, () => undefined),
    );
    assert.equal(sweeper.size, 0);
  });
});
