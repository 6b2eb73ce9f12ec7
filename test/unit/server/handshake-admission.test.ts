// Handshake admission on a real TLS server and real sockets: connections beyond the bound wait
// unread and are admitted as handshakes end, in arrival order; one that waited too long is
// closed without a handshake.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
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
    const peak = { inProgress: 0 };
    const queued = { n: 0 };
    const expired = { n: 0 };
    const gate = new HandshakeAdmission(secure, {
      ...options,
      observer: {
        changed: (inProgress) => (peak.inProgress = Math.max(peak.inProgress, inProgress)),
        queued: () => queued.n++,
        expired: () => expired.n++,
      },
    });
    await new Promise<void>((resolve) => gate.tcp.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => gate.close());
    const port = (gate.tcp.address() as net.AddressInfo).port;
    return { port, gate, peak, queued, expired, order };
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

  it('holds connections beyond the bound unread and admits them as handshakes end', async () => {
    const { port, gate, peak, queued, order } = await start({ maxInProgress: 2, maxWaitMs: 60_000 });
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

  it('frees a slot when an admitted client hangs up mid-handshake', async () => {
    const { port, gate } = await start({ maxInProgress: 1, maxWaitMs: 60_000 });
    const [quitter, next] = await admittedAndWaiting(port, gate);
    const nextDone = handshake(next);
    quitter.destroy();
    assert.equal(await nextDone, 'hello');
  });

  it('closes, unread, a connection that waited longer than maxWaitMs', async () => {
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
