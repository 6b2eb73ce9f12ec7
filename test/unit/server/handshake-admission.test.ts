// Handshake admission on a real TLS server and real sockets: connections beyond the bound wait
// (read, not handshaken) and are admitted as handshakes end with what they sent meanwhile, in
// arrival order, or newest first once the oldest has waited too long; one whose client closes
// it leaves the queue at once; one that waited longer than the limit is closed unhandshaken.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import { HandshakeAdmission, type HandshakeAdmissionOptions } from '../../../server/handshake-admission.js';
import { testPki, type TestPki } from '../../support/pki.js';
import { waitFor, within } from '../../support/wait.js';

describe('TLS handshake admission', () => {
  let pki: TestPki;
  const cleanups: (() => void)[] = [];

  before(async () => {
    pki = await testPki();
  });
  after(() => {
    for (const c of cleanups.reverse()) c();
  });

  interface Started {
    port: number;
    gate: HandshakeAdmission;
    peak: { inProgress: number };
    queued: { n: number };
    expired: { n: number };
    abandoned: { n: number };
    refused: { n: number };
    /** Handshakes that failed on the server. */
    failed: { n: number };
    /** Client ports, in the order their handshakes completed. */
    order: number[];
  }

  async function start(options: Omit<HandshakeAdmissionOptions, 'observer'>): Promise<Started> {
    const secure = tls.createServer({ cert: pki.pki.server.cert, key: pki.pki.server.key });
    const order: number[] = [];
    secure.on('secureConnection', (s: tls.TLSSocket) => {
      order.push(s.remotePort ?? 0);
      s.end('hello');
    });
    const failed = { n: 0 };
    secure.on('tlsClientError', () => failed.n++);
    const peak = { inProgress: 0 };
    const queued = { n: 0 };
    const expired = { n: 0 };
    const abandoned = { n: 0 };
    const refused = { n: 0 };
    const gate = new HandshakeAdmission(secure, {
      ...options,
      observer: {
        changed: (inProgress) => (peak.inProgress = Math.max(peak.inProgress, inProgress)),
        queued: () => queued.n++,
        expired: () => expired.n++,
        abandoned: () => abandoned.n++,
        refused: () => refused.n++,
      },
    });
    await new Promise<void>((resolve) => gate.tcp.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => gate.close());
    const port = (gate.tcp.address() as net.AddressInfo).port;
    return { port, gate, peak, queued, expired, abandoned, refused, failed, order };
  }

  /** A TCP connection that has not started its handshake yet: it holds a slot once admitted. */
  async function rawConnection(port: number): Promise<net.Socket> {
    const socket = net.connect(port, '127.0.0.1');
    cleanups.push(() => socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return socket;
  }

  /** With one slot: a connection that holds it, and one waiting behind it. */
  async function admittedAndWaiting(
    port: number,
    gate: HandshakeAdmission,
  ): Promise<[net.Socket, net.Socket]> {
    const admitted = await rawConnection(port);
    const waiting = await rawConnection(port);
    await waitFor('one admitted, one waiting', () => gate.handshaking === 1 && gate.waiting === 1);
    return [admitted, waiting];
  }

  /** Runs the handshake on a connected socket and reads what the server says after it. */
  function handshake(socket: net.Socket): Promise<string> {
    const t = tls.connect({ socket, ca: pki.pki.ca.cert, servername: 'localhost' });
    cleanups.push(() => t.destroy());
    const answered = new Promise<string>((resolve, reject) => {
      let text = '';
      t.on('data', (d: Buffer) => (text += d.toString()));
      t.once('end', () => resolve(text));
      t.once('error', reject);
    });
    // A slot that is never freed shows as this failing, not as a test that hangs.
    return within(answered, 10_000, 'the handshake and the answer');
  }

  /**
   * A TLS client on `socket` whose first flight (the ClientHello) goes out in `pieces` writes,
   * each after a turn of the event loop, so that the waiting connection reads it in parts.
   */
  function choppedHandshake(
    socket: net.Socket,
    pieces: number,
    maxVersion: tls.SecureVersion,
  ): Promise<string> {
    socket.setNoDelay(true);
    let first = true;
    const chopper = new Duplex({
      read() {
        socket.resume();
      },
      write(chunk: Buffer, _encoding, done) {
        if (!first) {
          socket.write(chunk, done);
          return;
        }
        first = false;
        void (async () => {
          const size = Math.ceil(chunk.length / pieces);
          for (let at = 0; at < chunk.length; at += size) {
            socket.write(chunk.subarray(at, at + size));
            await new Promise((resolve) => setImmediate(resolve));
          }
          done();
        })();
      },
      final(done) {
        socket.end();
        done();
      },
      destroy(err, done) {
        socket.destroy();
        done(err);
      },
    });
    socket.on('data', (d: Buffer) => {
      if (!chopper.push(d)) socket.pause();
    });
    socket.on('end', () => chopper.push(null));
    const t = tls.connect({ socket: chopper, ca: pki.pki.ca.cert, servername: 'localhost', maxVersion });
    cleanups.push(() => t.destroy());
    const answered = new Promise<string>((resolve, reject) => {
      let text = '';
      t.on('data', (d: Buffer) => (text += d.toString()));
      t.once('end', () => resolve(text));
      t.once('error', reject);
    });
    return within(answered, 10_000, `the ${maxVersion} handshake with a chopped ClientHello`);
  }

  it('holds connections beyond the bound and admits them as handshakes end', async () => {
    const { port, gate, peak, queued, order } = await start({
      maxInProgress: 2,
      maxWaitMs: 60_000,
      newestFirstAfterMs: 60_000,
    });
    const first = await rawConnection(port);
    const second = await rawConnection(port);
    const third = await rawConnection(port);
    const ports = [first.localPort, second.localPort, third.localPort];
    await waitFor('two admitted, one waiting', () => gate.handshaking === 2 && gate.waiting === 1);
    // The third sends its ClientHello now, but has no slot: it is answered only after a slot frees.
    const thirdDone = handshake(third);
    assert.equal(await handshake(first), 'hello');
    assert.equal(await thirdDone, 'hello');
    assert.equal(await handshake(second), 'hello');
    await waitFor('all slots free', () => gate.handshaking === 0 && gate.waiting === 0);
    assert.equal(peak.inProgress, 2);
    assert.equal(queued.n, 1);
    assert.deepEqual(order, [ports[0], ports[2], ports[1]]);
  });

  it('admits the newest first once the oldest has waited longer than newestFirstAfterMs', async () => {
    let now = 0;
    const { port, gate, order } = await start({
      maxInProgress: 1,
      maxWaitMs: 60_000,
      newestFirstAfterMs: 1000,
      now: () => now,
    });
    const [holder, oldest] = await admittedAndWaiting(port, gate);
    now = 100;
    const middle = await rawConnection(port);
    now = 200;
    const newest = await rawConnection(port);
    await waitFor('three waiting', () => gate.waiting === 3);
    const ports = [holder, newest, middle, oldest].map((s) => s.localPort);
    // Each sends its ClientHello now, while it waits; the oldest has waited past the limit.
    const waiters = [oldest, middle, newest].map((s) => handshake(s));
    now = 1500;
    assert.equal(await handshake(holder), 'hello');
    for (const done of waiters) assert.equal(await done, 'hello');
    assert.deepEqual(order, ports);
  });

  it('hands a ClientHello read in pieces while waiting to TLS intact (TLS 1.2 and 1.3)', async () => {
    const { port, gate, failed } = await start({ maxInProgress: 1, maxWaitMs: 60_000 });
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const [holder, waiter] = await admittedAndWaiting(port, gate);
      const waiterDone = choppedHandshake(waiter, 9, version);
      assert.equal(await handshake(holder), 'hello');
      assert.equal(await waiterDone, 'hello', version);
      await waitFor('all slots free', () => gate.handshaking === 0 && gate.waiting === 0);
    }
    assert.equal(failed.n, 0);
  });

  it('admits in arrival order while the oldest has waited less than newestFirstAfterMs', async () => {
    let now = 0;
    const { port, gate, order } = await start({
      maxInProgress: 1,
      maxWaitMs: 60_000,
      newestFirstAfterMs: 1000,
      now: () => now,
    });
    const [holder, a] = await admittedAndWaiting(port, gate);
    now = 100;
    const b = await rawConnection(port);
    now = 200;
    const c = await rawConnection(port);
    await waitFor('three waiting', () => gate.waiting === 3);
    const ports = [holder, a, b, c].map((s) => s.localPort);
    const waiters = [c, b, a].map((s) => handshake(s));
    now = 900;
    assert.equal(await handshake(holder), 'hello');
    for (const done of waiters) assert.equal(await done, 'hello');
    assert.deepEqual(order, ports);
  });

  it('expires the oldest while newer ones are admitted first', async () => {
    let now = 0;
    const { port, gate, order, expired } = await start({
      maxInProgress: 1,
      maxWaitMs: 30_000,
      newestFirstAfterMs: 1000,
      now: () => now,
    });
    // A silent connection waits from t=0; newer ones keep coming and, newest first, go before it.
    const [holder, silent] = await admittedAndWaiting(port, gate);
    silent.on('error', () => undefined);
    const silentClosed = new Promise<void>((resolve) => silent.once('close', () => resolve()));
    now = 2000;
    const a = await rawConnection(port);
    await waitFor('two waiting', () => gate.waiting === 2);
    const ports = [holder.localPort, a.localPort];
    assert.equal(await handshake(holder), 'hello');
    await waitFor('a admitted, the silent one waiting', () => gate.handshaking === 1 && gate.waiting === 1);
    const c = await rawConnection(port);
    ports.push(c.localPort);
    await waitFor('c waiting too', () => gate.waiting === 2);
    now = 31_000;
    assert.equal(await handshake(a), 'hello');
    await within(silentClosed, 10_000, 'the silent connection closed');
    assert.equal(expired.n, 1);
    await waitFor('c admitted', () => gate.handshaking === 1 && gate.waiting === 0);
    assert.equal(await handshake(c), 'hello');
    assert.deepEqual(order, ports);
  });

  it('drops a waiting connection whose client resets it', async () => {
    const { port, gate, abandoned } = await start({ maxInProgress: 1, maxWaitMs: 60_000 });
    const [holder, resetter] = await admittedAndWaiting(port, gate);
    resetter.resetAndDestroy();
    await waitFor('the resetter left the queue', () => gate.waiting === 0 && abandoned.n === 1);
    assert.equal(await handshake(holder), 'hello');
  });

  it('closes a waiting connection whose first byte is not TLS, at once', async () => {
    const { port, gate, refused } = await start({ maxInProgress: 1, maxWaitMs: 60_000 });
    const [holder, plain] = await admittedAndWaiting(port, gate);
    plain.on('error', () => undefined);
    const plainClosed = new Promise<void>((resolve) => plain.once('close', () => resolve()));
    plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await within(plainClosed, 10_000, 'the plain-text connection closed');
    await waitFor('it left the queue', () => gate.waiting === 0 && refused.n === 1);
    assert.equal(gate.handshaking, 1, 'the holder still holds the only slot');
    assert.equal(await handshake(holder), 'hello');
  });

  it('frees a slot when an admitted client hangs up mid-handshake', async () => {
    const { port, gate } = await start({ maxInProgress: 1, maxWaitMs: 60_000 });
    const [quitter, next] = await admittedAndWaiting(port, gate);
    const nextDone = handshake(next);
    quitter.destroy();
    assert.equal(await nextDone, 'hello');
  });

  it('closes, without a handshake, a connection that waited longer than maxWaitMs', async () => {
    let now = 0;
    const { port, gate, expired } = await start({ maxInProgress: 1, maxWaitMs: 10_000, now: () => now });
    const [holder, late] = await admittedAndWaiting(port, gate);
    const lateClosed = new Promise<void>((resolve) => late.once('close', () => resolve()));
    late.on('error', () => undefined);
    now = 10_001;
    assert.equal(await handshake(holder), 'hello');
    await within(lateClosed, 10_000, 'the late connection closed');
    assert.equal(expired.n, 1);
    await waitFor('nothing left', () => gate.handshaking === 0 && gate.waiting === 0);
    // The server goes on: a new client is served.
    assert.equal(await handshake(await rawConnection(port)), 'hello');
  });

  it('drops a waiting connection at once when its client closes it, and never handshakes it', async () => {
    const { port, gate, abandoned, failed, order } = await start({ maxInProgress: 1, maxWaitMs: 60_000 });
    const [holder, quitter] = await admittedAndWaiting(port, gate);
    const stays = await rawConnection(port);
    const ports = [holder.localPort, stays.localPort];
    await waitFor('two waiting', () => gate.waiting === 2);
    // The quitter sends the start of a ClientHello, then gives up, as an agent does on its timeout.
    quitter.end(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01]));
    await waitFor('the quitter left the queue', () => gate.waiting === 1 && abandoned.n === 1);
    assert.equal(gate.handshaking, 1, 'the holder still holds the only slot');
    const staysDone = handshake(stays);
    assert.equal(await handshake(holder), 'hello');
    assert.equal(await staysDone, 'hello');
    assert.deepEqual(order, ports);
    assert.equal(failed.n, 0, 'no handshake was attempted on the closed connection');
    await waitFor('nothing left', () => gate.handshaking === 0 && gate.waiting === 0);
  });

  it('closes a waiting connection that sends more than one TLS record, and serves the next', async () => {
    const { port, gate, refused, abandoned } = await start({ maxInProgress: 1, maxWaitMs: 60_000 });
    const [holder, flooder] = await admittedAndWaiting(port, gate);
    const next = await rawConnection(port);
    await waitFor('two waiting', () => gate.waiting === 2);
    flooder.on('error', () => undefined);
    const flooderClosed = new Promise<void>((resolve) => flooder.once('close', () => resolve()));
    // 1 MiB that starts like a TLS record, before its turn: no TLS client does that.
    const flood = Buffer.alloc(1024 * 1024, 0x41);
    flood[0] = 0x16;
    flooder.write(flood);
    await within(flooderClosed, 10_000, 'the flooder closed');
    await waitFor('the flooder left the queue', () => gate.waiting === 1);
    assert.equal(refused.n, 1);
    assert.equal(abandoned.n, 0);
    assert.equal(gate.handshaking, 1, 'the holder still holds the only slot');
    const nextDone = handshake(next);
    assert.equal(await handshake(holder), 'hello');
    assert.equal(await nextDone, 'hello');
  });

  it('closes the waiting connections on close(), and the admitted ones on destroy()', async () => {
    const { port, gate } = await start({ maxInProgress: 1, maxWaitMs: 60_000 });
    const [admitted, waiting] = await admittedAndWaiting(port, gate);
    const closed = (s: net.Socket) => new Promise<void>((resolve) => s.once('close', () => resolve()));
    for (const s of [admitted, waiting]) s.on('error', () => undefined);
    const admittedClosed = closed(admitted);
    gate.close();
    await within(closed(waiting), 10_000, 'the waiting connection closed');
    assert.equal(admitted.destroyed, false, 'an admitted handshake goes on after close()');
    gate.destroy();
    await within(admittedClosed, 10_000, 'the admitted connection closed');
  });

  it('refuses garbage from one client and serves the next', async () => {
    const { port, gate } = await start({ maxInProgress: 1, maxWaitMs: 60_000 });
    const [junk, good] = await admittedAndWaiting(port, gate);
    const goodDone = handshake(good);
    junk.on('error', () => undefined);
    junk.write('GET / HTTP/1.1\r\n\r\n');
    assert.equal(await goodDone, 'hello');
  });
});
