// Benchmark scenarios: each takes a dialer, so the tunnel and plain TCP run the same code.
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { readAll, repeatChunks, writeAll } from '../test/support/targets.js';
import { ReusableGrpcTunnel, type FrontendAddress } from '../ccm-integration/dialer/index.js';

export type Dialer = (address: string) => Promise<Duplex>;

/** Every dial on one Proxy stream of one HTTP/2 connection; close() when done. */
export function reusableGrpc(frontend: FrontendAddress): { dial: Dialer; close: () => void } {
  const tunnel = new ReusableGrpcTunnel(frontend);
  return { dial: (address) => tunnel.dial(address), close: () => tunnel.close() };
}

export const plainTcp: Dialer = (address) =>
  new Promise((resolve, reject) => {
    const [host, port] = address.split(':');
    const s = net.connect({ host, port: Number(port), allowHalfOpen: true, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });

export interface Latency {
  perSecond: number;
  p50: number;
  p99: number;
}

function quantiles(samples: number[], count: number, seconds: number): Latency {
  samples.sort((a, b) => a - b);
  const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? 0;
  return { perSecond: count / seconds, p50: q(0.5), p99: q(0.99) };
}

export async function download(d: Dialer, address: string, bytes: number): Promise<number> {
  const s = await d(address);
  let got = 0;
  const t0 = performance.now();
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => (got += c.length));
    s.once('end', resolve);
    s.once('error', reject);
  });
  s.write(`source ${bytes}\n`);
  await done;
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  if (got !== bytes) throw new Error(`short download: ${got} of ${bytes}`);
  return bytes / 1e6 / secs;
}

export async function upload(d: Dialer, address: string, bytes: number): Promise<number> {
  const s = await d(address);
  const answer = readAll(s);
  const t0 = performance.now();
  s.write(`sink ${bytes}\n`);
  await writeAll(s, repeatChunks(bytes));
  const text = (await answer).toString();
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  if (text !== 'ok\n') throw new Error(`upload not acknowledged: ${text}`);
  return bytes / 1e6 / secs;
}

/** Dial, one-byte echo, close: what a webhook call or a kubelet probe costs. */
async function dialEchoClose(d: Dialer, address: string): Promise<void> {
  const s = await d(address);
  const one = new Promise<void>((resolve, reject) => {
    s.once('data', () => resolve());
    s.once('error', reject);
  });
  s.write('echo\nx');
  await one;
  s.destroy();
}

export async function sequentialDials(d: Dialer, address: string, count: number): Promise<Latency> {
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await dialEchoClose(d, address);
    lat.push(performance.now() - t);
  }
  return quantiles(lat, count, (performance.now() - t0) / 1000);
}

export async function parallelDials(
  d: Dialer,
  address: string,
  width: number,
  count: number,
): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next++ < count) await dialEchoClose(d, address);
    }),
  );
  return count / ((performance.now() - t0) / 1000);
}

/** `conns` connections each doing 1 KiB echo round trips, one at a time, for `ms`. */
export async function echoRoundTrips(
  d: Dialer,
  address: string,
  conns: number,
  ms: number,
): Promise<Latency> {
  const sockets: Duplex[] = [];
  for (let i = 0; i < conns; i += 50) {
    sockets.push(...(await Promise.all(Array.from({ length: Math.min(50, conns - i) }, () => d(address)))));
  }
  for (const s of sockets) s.write('echo\n');
  const payload = Buffer.alloc(1024, 0x61);
  const lat: number[] = [];
  let count = 0;
  const deadline = performance.now() + ms;
  const t0 = performance.now();
  await Promise.all(
    sockets.map(
      (s) =>
        new Promise<void>((resolve, reject) => {
          let got = 0;
          let started = 0;
          const send = () => {
            if (performance.now() > deadline) {
              s.off('data', onData);
              resolve();
              return;
            }
            got = 0;
            started = performance.now();
            s.write(payload);
          };
          const onData = (c: Buffer) => {
            got += c.length;
            if (got >= payload.length) {
              lat.push(performance.now() - started);
              count++;
              send();
            }
          };
          s.on('data', onData);
          s.once('error', reject);
          send();
        }),
    ),
  );
  const secs = (performance.now() - t0) / 1000;
  for (const s of sockets) s.destroy();
  return quantiles(lat, count, secs);
}
