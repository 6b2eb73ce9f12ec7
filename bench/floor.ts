// `npm run bench:floor`: the benchmark's sequential dial (dial, 1-byte echo, close) through the
// simplest proxy Node can run, beside what the performance goal asks of the real tunnel. Each
// proxy dials the target itself (no agent hop), logs and counts nothing, and runs in its own
// process, as the proxy-server does:
// - HTTP CONNECT: http 'connect' -> net.connect -> pipe;
// - gRPC-like: one HTTP/2 connection and stream per dial (as kube-apiserver opens them), the
//   stream's first bytes name the target, then bytes both ways.
// What these make is an upper bound for any Node implementation of the tunnel on this machine.
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { fork } from 'node:child_process';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Duplex } from 'node:stream';
import * as s from './scenarios.js';
import { startTarget } from './helpers.js';

const DIALS = 3000;
const WARMUP = 300;

/** Connects the target named by `address` ("host:port"); calls back once connected. */
function connectTarget(address: string, onConnect: (target: net.Socket) => void): net.Socket {
  const [host, port] = address.split(':');
  const target = net.connect({ host, port: Number(port), noDelay: true }, () => {
    onConnect(target);
  });
  return target;
}

function runConnectProxy(path: string): void {
  const server = http.createServer();
  server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const target = connectTarget(req.url ?? '', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) target.write(head);
      target.pipe(client);
      client.pipe(target);
    });
    target.on('error', () => client.destroy());
    client.on('error', () => target.destroy());
  });
  server.listen(path, () => process.send?.('ready'));
}

function runHttp2Proxy(path: string): void {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    stream.once('data', (address: Buffer) => {
      const target = connectTarget(address.toString(), () => {
        stream.write('ok');
        stream.pipe(target);
        target.pipe(stream);
      });
      target.on('error', () => stream.destroy());
      stream.on('error', () => target.destroy());
      stream.on('close', () => target.destroy());
    });
  });
  server.listen(path, () => process.send?.('ready'));
}

async function startProxy(role: string, path: string): Promise<() => void> {
  rmSync(path, { force: true });
  const child = fork(fileURLToPath(import.meta.url), [role, path], { stdio: 'inherit' });
  await new Promise((resolve) => child.once('message', resolve));
  return () => child.kill('SIGTERM');
}

function connectDialer(path: string): s.Dialer {
  return (address) =>
    new Promise((resolve, reject) => {
      const req = http.request({ socketPath: path, method: 'CONNECT', path: address });
      req.on('connect', (_res: http.IncomingMessage, socket: net.Socket) => resolve(socket));
      req.on('error', reject);
      req.end();
    });
}

function http2Dialer(path: string): s.Dialer {
  return (address) =>
    new Promise<Duplex>((resolve, reject) => {
      const session = http2.connect('http://localhost', { createConnection: () => net.connect(path) });
      session.on('error', reject);
      const stream = session.request({ ':method': 'POST', ':path': '/ProxyService/Proxy' });
      stream.once('close', () => session.close());
      stream.once('error', reject);
      stream.once('data', () => resolve(stream)); // "ok": the target is connected
      stream.write(address);
    });
}

async function measure(name: string, d: s.Dialer, address: string, goal: string): Promise<void> {
  await s.sequentialDials(d, address, WARMUP);
  const r = await s.sequentialDials(d, address, DIALS);
  process.stdout.write(`| ${name} | ${r.perSecond.toFixed(0)}/s, p50 ${r.p50.toFixed(2)} ms | ${goal} |\n`);
}

const [role, path] = process.argv.slice(2);
if (role === 'connect-proxy' && path) runConnectProxy(path);
else if (role === 'http2-proxy' && path) runHttp2Proxy(path);
else {
  const target = await startTarget();
  const connectPath = join(tmpdir(), `knp-floor-connect-${String(process.pid)}.sock`);
  const http2Path = join(tmpdir(), `knp-floor-http2-${String(process.pid)}.sock`);
  const stops = [await startProxy('connect-proxy', connectPath), await startProxy('http2-proxy', http2Path)];
  try {
    process.stdout.write(
      '| bare Node proxy, no agent hop (UDS) | sequential dials | goal for the tunnel, agent hop included |\n|---|---|---|\n',
    );
    await measure('HTTP CONNECT', connectDialer(connectPath), target.address, '1960-2140/s');
    await measure(
      'HTTP/2, one connection per dial',
      http2Dialer(http2Path),
      target.address,
      '850-1120/s (gRPC)',
    );
  } finally {
    for (const stop of stops) stop();
    target.stop();
    rmSync(connectPath, { force: true });
    rmSync(http2Path, { force: true });
  }
  process.exit(0);
}
