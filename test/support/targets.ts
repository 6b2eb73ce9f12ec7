// Targets on the "node side": a lab server speaking a tiny line protocol to check data
// integrity end to end, and deterministic data streams to hash.
import net from 'node:net';
import { createCipheriv, createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { dial, type FrontendAddress } from '../../ccm-integration/dialer/index.js';

const CHUNK = 64 * 1024;
const ZEROS = Buffer.alloc(CHUNK);

/** A deterministic byte stream (AES-CTR keystream) so both ends can hash it without storing it. */
export function* deterministicChunks(total: number, seed: number): Generator<Buffer> {
  const key = createHash('sha256').update(`seed-${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  let left = total;
  while (left > 0) {
    const n = Math.min(CHUNK, left);
    yield cipher.update(n === CHUNK ? ZEROS : ZEROS.subarray(0, n));
    left -= n;
  }
}

export function hashOf(total: number, seed: number): string {
  const h = createHash('sha256');
  for (const c of deterministicChunks(total, seed)) h.update(c);
  return h.digest('hex');
}

const FILLER = Buffer.alloc(CHUNK, 0x5a);

/** `total` bytes of a constant chunk: for throughput runs, where generating data would cost. */
export function* repeatChunks(total: number): Generator<Buffer> {
  for (let left = total; left > 0; left -= CHUNK) yield left >= CHUNK ? FILLER : FILLER.subarray(0, left);
}

/** Writes a generator to a stream with backpressure. */
export async function writeAll(stream: Duplex | net.Socket, chunks: Iterable<Buffer>): Promise<void> {
  for (const c of chunks) {
    if (!stream.write(c)) {
      await new Promise<void>((resolve, reject) => {
        const onErr = (e: Error) => {
          stream.off('drain', onDrain);
          reject(e);
        };
        const onDrain = () => {
          stream.off('error', onErr);
          resolve();
        };
        stream.once('drain', onDrain);
        stream.once('error', onErr);
      });
    }
  }
}

/** Reads a stream to its end, hashing it. */
export function readAllHash(stream: Duplex | net.Socket): Promise<{ hash: string; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    let bytes = 0;
    stream.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
    });
    stream.once('end', () => resolve({ hash: h.digest('hex'), bytes }));
    stream.once('error', reject);
  });
}

export function readAll(stream: Duplex | net.Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.once('end', () => resolve(Buffer.concat(parts)));
    stream.once('error', reject);
  });
}

/**
 * Lab target. First line selects the behaviour:
 *   "download <bytes> <seed>": sends that deterministic stream, then ends;
 *   "upload <bytes>": hashes what follows and answers its sha256 after <bytes> bytes;
 *   "source <bytes>" / "sink <bytes>": the same without generating or hashing (benchmarks);
 *   "echo": echoes until the client ends, then ends (half-close friendly);
 *   "id": answers the target's name.
 * Anything else: an HTTP/1.1 response naming the target.
 */
export class LabTarget {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(readonly name = 'lab') {
    this.server = net.createServer({ allowHalfOpen: true }, (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      this.serve(s);
    });
  }

  host = '127.0.0.1';

  async start(host = '127.0.0.1'): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, host, r));
    this.port = (this.server.address() as AddressInfo).port;
    this.host = host;
    return this;
  }

  get address(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private serve(s: net.Socket): void {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const nl = head.indexOf('\n');
      if (nl < 0) return;
      s.off('data', onData);
      const line = head.toString('latin1', 0, nl).trim();
      const rest = head.subarray(nl + 1);
      const [cmd, a, b] = line.split(' ');
      if (cmd === 'download') {
        void writeAll(s, deterministicChunks(Number(a), Number(b))).then(
          () => s.end(),
          () => s.destroy(),
        );
      } else if (cmd === 'upload') {
        const want = Number(a);
        const h = createHash('sha256');
        let got = 0;
        const take = (c: Buffer) => {
          h.update(c);
          got += c.length;
          if (got >= want) {
            s.off('data', take);
            s.end(h.digest('hex') + '\n');
          }
        };
        if (rest.length) take(rest);
        if (got < want) s.on('data', take);
      } else if (cmd === 'source') {
        // Cheap bytes for benchmarks: no generation cost on the target.
        void writeAll(s, repeatChunks(Number(a))).then(
          () => s.end(),
          () => s.destroy(),
        );
      } else if (cmd === 'sink') {
        const want = Number(a);
        let got = rest.length;
        const take = (c: Buffer) => {
          got += c.length;
          if (got >= want) {
            s.off('data', take);
            s.end('ok\n');
          }
        };
        if (got >= want) s.end('ok\n');
        else s.on('data', take);
      } else if (cmd === 'echo') {
        if (rest.length) s.write(rest);
        s.pipe(s);
      } else if (cmd === 'id') {
        s.end(this.name + '\n');
      } else {
        const body = `hello from ${this.name}\n`;
        s.end(
          `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
        );
      }
    };
    s.on('data', onData);
    // Like a real server: a client that leaves before asking anything is closed on.
    s.once('end', () => {
      if (s.listenerCount('data') > 0 && head.indexOf('\n') < 0) s.end();
    });
  }
}

/** A port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Dials the lab target at `address` through `frontend` and returns its answer to "id". */
export async function askLabId(frontend: FrontendAddress, address: string): Promise<string> {
  const sock = await dial(frontend, address);
  const back = readAll(sock);
  sock.end('id\n');
  return (await back).toString();
}
