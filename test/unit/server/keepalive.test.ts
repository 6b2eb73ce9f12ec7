// The keepalive sweeper against real HTTP/2 connections on loopback, its clock driven by the
// test: pings only connections that were quiet for a whole interval, paced to a rate.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import {
  http2Target,
  KeepaliveSweeper,
  keepaliveTickMs,
  type KeepaliveTarget,
} from '../../../server/keepalive.js';
import { waitFor } from '../../support/wait.js';

const INTERVAL = 1_000_000; // the sweeper's own timer never fires during the test
const TICK = 1000; // keepaliveTickMs(INTERVAL, 0)

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

  it('pings a connection quiet for a whole interval, never earlier, not one that read meanwhile', async () => {
    const { sweeper, watch, timeouts, clock } = clockedSweeper();
    const quiet = await connection();
    const busy = await connection();
    watch(quiet.session);
    const busyReads = watch(busy.session);
    assert.equal(sweeper.size, 2);

    clock.now = INTERVAL - 1;
    sweeper.tick();
    busyReads.read(); // data arrived on the busy connection since
    // A read marks the last tick, so a ping waits one tick beyond the interval: never early.
    clock.now = INTERVAL + TICK - 1;
    sweeper.tick();
    assert.equal(sweeper.pingsOutstanding, 0);
    clock.now = INTERVAL + TICK;
    sweeper.tick();
    assert.equal(sweeper.pingsOutstanding, 1);
    await waitFor('quiet connection pinged', () => quiet.pings.received === 1 || undefined);
    await waitFor('ping answered', () => sweeper.pingsOutstanding === 0 || undefined);
    assert.equal(busy.pings.received, 0, 'a connection that is reading is not pinged');

    // The answer came back: no second ping, no timeout, until another quiet interval passes.
    clock.now = INTERVAL + 3 * TICK;
    sweeper.tick();
    assert.deepEqual(timeouts, []);
    assert.equal(quiet.pings.received, 1);
    assert.equal(quiet.session.destroyed, false);
    // The busy one falls due an interval after its read, before the quiet one's second time.
    clock.now = 2 * INTERVAL + TICK;
    sweeper.tick();
    await waitFor('busy connection pinged once quiet', () => busy.pings.received === 1 || undefined);
    assert.equal(quiet.pings.received, 1);

    sweeper.forget(quiet.session);
    sweeper.forget(busy.session);
    assert.equal(sweeper.size, 0);
  });

  it('destroys a connection whose ping is not answered within the timeout', async () => {
    const { sweeper, watch, timeouts, clock } = clockedSweeper();
    const c = await connection();
    watch(c.session);
    // The ticks below run in one go: the answer cannot arrive in between.
    clock.now = INTERVAL + TICK;
    sweeper.tick();
    assert.equal(sweeper.pingsOutstanding, 1);
    clock.now = INTERVAL + TICK + 499;
    sweeper.tick();
    assert.equal(c.session.destroyed, false);
    clock.now = INTERVAL + 2 * TICK; // the first tick at or after the ping's deadline
    sweeper.tick();
    assert.deepEqual(timeouts, [500]);
    assert.equal(c.session.destroyed, true);
    assert.equal(sweeper.size, 0);
    assert.equal(sweeper.pingsOutstanding, 0);
  });

  it('keeps a connection that sends after an unanswered ping, and handles every slot after a stall', () => {
    const { sweeper, clock } = clockedSweeper();
    const sent: (() => void)[] = [];
    const timedOut: number[] = [];
    // A peer that takes pings and never answers them.
    const silent = (): KeepaliveTarget => ({
      ping: (answered) => sent.push(answered) > 0,
      timedOut: (ms) => timedOut.push(ms),
    });
    const talker = { name: 'talker' };
    const talks = sweeper.watch(talker, silent());
    sweeper.watch({ name: 'mute' }, silent());
    clock.now = INTERVAL + TICK;
    sweeper.tick();
    assert.equal(sent.length, 2);
    clock.now += TICK / 2;
    sweeper.tick();
    talks.read(); // data after the ping left: alive, answer or not
    clock.now = INTERVAL + 2 * TICK;
    sweeper.tick();
    assert.deepEqual(timedOut, [500], 'the mute one is given up on, the talker is not');
    assert.equal(sweeper.size, 1);
    assert.equal(sweeper.pingsOutstanding, 0);

    // The loop stalls for ten intervals: the next tick catches up, the talker is due at once.
    clock.now = 11 * INTERVAL;
    sweeper.tick();
    assert.equal(sent.length, 3);
    assert.equal(sweeper.pingsOutstanding, 1);
    const late = sent[0];
    assert.ok(late);
    late(); // the first ping's answer, long after: not taken for the new ping's
    assert.equal(sweeper.pingsOutstanding, 1);
    sent[2]?.();
    assert.equal(sweeper.pingsOutstanding, 0);
    sweeper.forget(talker);
    assert.equal(sweeper.size, 0);
  });

  it('after a stall of any length, one tick pings every quiet connection once', () => {
    // A small wheel (2 s interval: 125 ms ticks), stalls from one tick to three turns of it,
    // connections in different slots: a tick must end and miss no one.
    for (let stallTicks = 1; stallTicks <= 60; stallTicks++) {
      let now = 0;
      const sweeper = new KeepaliveSweeper({ intervalMs: 2000, timeoutMs: 500 }, () => now);
      const pings: number[] = [];
      for (let i = 0; i < 3; i++) {
        now = i * 300;
        pings.push(0);
        sweeper.watch({ i }, { ping: () => (pings[i] = (pings[i] ?? 0) + 1) > 0, timedOut: () => undefined });
      }
      now = 2000 + 3 * 125 + stallTicks * 125 + 600;
      sweeper.tick();
      assert.deepEqual(pings, [1, 1, 1], `stall of ${String(stallTicks)} ticks`);
      assert.equal(sweeper.pingsOutstanding, 3);
    }
  });

  it('paces pings to its rate, and skips a queued connection that read before its turn', async () => {
    let now = 0;
    // 2 a second: two per 1 s tick.
    const sweeper = new KeepaliveSweeper(
      { intervalMs: INTERVAL, timeoutMs: 10 * TICK, maxPingsPerSecond: 2 },
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
    now = INTERVAL + TICK;
    sweeper.tick();
    assert.equal(sweeper.pingsOutstanding, 2);
    assert.equal(sweeper.pingsWaiting, 3);
    reads[2]?.read(); // the third is busy again before its turn
    now += TICK;
    sweeper.tick();
    assert.equal(sweeper.pingsOutstanding, 4, 'the third was skipped, the fourth and fifth sent');
    assert.equal(sweeper.pingsWaiting, 0);
    await waitFor('pings answered', () => sweeper.pingsOutstanding === 0 || undefined);
    assert.deepEqual(
      conns.map((c) => c.pings.received),
      [1, 1, 0, 1, 1],
    );
    for (const c of conns) sweeper.forget(c.session);
  });

  it('ticks short enough for the rate to go out in small batches', () => {
    assert.equal(keepaliveTickMs(15_000, 0), 937);
    assert.equal(keepaliveTickMs(15_000, 10), 937);
    assert.equal(keepaliveTickMs(15_000, 100), 250);
    assert.equal(keepaliveTickMs(3_600_000, 0), 1000);
    assert.equal(keepaliveTickMs(200, 0), 50);
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
