// `npm run bench`: server and agent as separate processes, a target on loopback, and our
// figures beside plain loopback TCP to the same target, measured in the same run. A first
// cut (the performance issue extends it): one-stream throughput and sequential dial rate.
import net from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { dial } from '../ccm-integration/dialer/index.js';
import { startCluster, type Cluster } from '../test/support/cluster.js';
import { LabTarget, deterministicChunks, readAllHash, writeAll, readAll } from '../test/support/targets.js';

const BYTES = 256 * 1024 * 1024;
const DIALS = 400;

type Dialer = (address: string) => Promise<Duplex>;

const plainTcp: Dialer = (address) =>
  new Promise((resolve, reject) => {
    const [host, port] = address.split(':');
    const s = net.connect({ host, port: Number(port), allowHalfOpen: true, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });

async function download(d: Dialer, address: string): Promise<number> {
  const s = await d(address);
  const t0 = performance.now();
  s.write(`download ${BYTES} 3\n`);
  const got = await readAllHash(s);
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  if (got.bytes !== BYTES) throw new Error(`short download: ${got.bytes}`);
  return BYTES / 1e6 / secs;
}

async function upload(d: Dialer, address: string): Promise<number> {
  const s = await d(address);
  const answer = readAll(s);
  const t0 = performance.now();
  s.write(`upload ${BYTES}\n`);
  await writeAll(s, deterministicChunks(BYTES, 4));
  await answer;
  const secs = (performance.now() - t0) / 1000;
  s.destroy();
  return BYTES / 1e6 / secs;
}

async function sequentialDials(
  d: Dialer,
  address: string,
): Promise<{ rate: number; p50: number; p99: number }> {
  const lat: number[] = [];
  const t0 = performance.now();
  for (let i = 0; i < DIALS; i++) {
    const t = performance.now();
    const s = await d(address);
    const one = new Promise<void>((resolve) => s.once('data', () => resolve()));
    s.write('echo\nx');
    await one;
    lat.push(performance.now() - t);
    s.destroy();
  }
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? 0;
  return { rate: DIALS / secs, p50: q(0.5), p99: q(0.99) };
}

async function measure(d: Dialer, address: string) {
  return {
    downloadMBps: await download(d, address),
    uploadMBps: await upload(d, address),
    dials: await sequentialDials(d, address),
  };
}

const target = await new LabTarget('bench').start();
const results: Record<string, Awaited<ReturnType<typeof measure>>> = {};
const clusters: Cluster[] = [];
try {
  for (const mode of ['grpc', 'http-connect'] as const) {
    const c = await startCluster(mode, 'uds', { serverArgs: ['-v=0'] });
    clusters.push(c);
    results[`${mode} (UDS)`] = await measure((a) => dial(c.frontend, a), target.address);
    await c.stop();
  }
  results['plain loopback TCP'] = await measure(plainTcp, target.address);
} finally {
  await Promise.all(clusters.map((c) => c.stop()));
  await target.stop();
}

const cols = Object.keys(results);
const row = (name: string, f: (r: Awaited<ReturnType<typeof measure>>) => string) =>
  `| ${name} | ${cols.map((c) => f(results[c] as Awaited<ReturnType<typeof measure>>)).join(' | ')} |`;
const lines = [
  `| figure | ${cols.join(' | ')} |`,
  `|---|${cols.map(() => '---').join('|')}|`,
  row('one stream, download (MB/s)', (r) => r.downloadMBps.toFixed(0)),
  row('one stream, upload (MB/s)', (r) => r.uploadMBps.toFixed(0)),
  row(`sequential dials (dial, 1-byte echo, close) /s`, (r) => r.dials.rate.toFixed(0)),
  row('  dial+echo latency p50 / p99 (ms)', (r) => `${r.dials.p50.toFixed(2)} / ${r.dials.p99.toFixed(2)}`),
];
process.stdout.write(lines.join('\n') + '\n');
mkdirSync('bench/results', { recursive: true });
writeFileSync(
  'bench/results/latest.json',
  JSON.stringify({ when: new Date().toISOString(), bytes: BYTES, dials: DIALS, results }, null, 2),
);
process.exit(0);
