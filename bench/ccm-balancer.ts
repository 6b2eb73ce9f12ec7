// Bench scenario: the CCM as a load balancer (the `konnectivity` provider), beside the proxy
// alone. One proxy-server (gRPC on a Unix socket, destHost) and one agent that names the node
// 127.0.0.1; the lab target stands in for the node's nodePort; a konnectivity-ccm process
// listens on a pool address for one Service of type LoadBalancer and carries each connection
// through the tunnel. The same figures are measured through the balancer (a plain TCP client
// to <pool address>:<Service port>) and through the proxy alone (a gRPC tunnel dial to the
// target, which is what the balancer does per connection), in the same run.
//
// Wiring in bench/main.ts (the lead's): after the other rows,
//   import { benchCcmBalancer, ccmBalancerTable } from './ccm-balancer.js';
//   const lb = await benchCcmBalancer({ target: target.address });
//   process.stdout.write(ccmBalancerTable(lb) + '\n');
// and, if wanted, `results['ccm balancer'] = lb` in latest.json.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dial } from '../ccm-integration/dialer/index.js';
import { startCcm, writeGrpcUdsEgressConfig, writeKonnectivityCloudConfig } from '../test/support/ccm.js';
import { startCluster } from '../test/support/cluster.js';
import { FakeKubeApi } from '../test/support/fake-kube-api.js';
import { waitFor } from '../test/support/wait.js';
import * as s from './scenarios.js';

export interface BalancerFigures {
  /** Connections per second, one after another: connect, 1-byte echo, close. */
  sequentialConnsPerSec: number;
  /** Connections per second with 50 at a time. */
  parallelConnsPerSec: number;
  /** One stream, target to client. */
  downloadMBps: number;
  /** One stream, client to target. */
  uploadMBps: number;
}

export interface CcmBalancerResult {
  bytes: number;
  /** A client → CCM listener → tunnel → agent → target. */
  balancer: BalancerFigures;
  /** A client's gRPC tunnel dial → agent → target (the balancer's own backend path). */
  proxy: BalancerFigures;
}

export interface CcmBalancerOptions {
  /** The lab target (bench/target.ts) as "127.0.0.1:<port>": it stands in for the nodePort. */
  target: string;
  /** Bytes per one-stream transfer (default 256 MiB). */
  bytes?: number;
  /** Sequential connections measured (default 500). */
  connections?: number;
  /** The pool address the balancer listens on (default 127.0.5.1). */
  poolAddress?: string;
}

const NODE = 'bench-node';

async function figures(
  d: s.Dialer,
  address: string,
  bytes: number,
  connections: number,
): Promise<BalancerFigures> {
  const downloadMBps = await s.download(d, address, bytes);
  const uploadMBps = await s.upload(d, address, bytes);
  const sequential = await s.sequentialDials(d, address, connections);
  const parallelConnsPerSec = await s.parallelDials(d, address, 50, connections * 4);
  return { sequentialConnsPerSec: sequential.perSecond, parallelConnsPerSec, downloadMBps, uploadMBps };
}

/** A port free on `address` now (bound and released). */
async function freePort(address: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function benchCcmBalancer(options: CcmBalancerOptions): Promise<CcmBalancerResult> {
  const bytes = options.bytes ?? 256 * 1024 * 1024;
  const connections = options.connections ?? 500;
  const pool = options.poolAddress ?? '127.0.5.1';
  const [targetHost = '', targetPortText = ''] = options.target.split(':');
  const targetPort = Number(targetPortText);
  const dir = mkdtempSync(join(tmpdir(), 'knp-bench-lb-'));
  const cluster = await startCluster('grpc', 'uds', {
    agents: 0,
    serverArgs: ['--proxy-strategies=destHost'],
  });
  const api = await new FakeKubeApi().start();
  let stopCcm: () => Promise<unknown> = () => Promise.resolve();
  try {
    await cluster.startAgent([`--agent-identifiers=host=${NODE}&ipv4=${targetHost}`]);
    api.apply({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: NODE },
      spec: {},
      status: {
        conditions: [{ type: 'Ready', status: 'True' }],
        addresses: [{ type: 'InternalIP', address: targetHost }],
      },
    });
    const egressFile = writeGrpcUdsEgressConfig(dir, cluster.frontend.uds ?? '');
    const cloudConfig = writeKonnectivityCloudConfig(dir, {
      servers: [`http://127.0.0.1:${cluster.server.adminPort}`],
      egressFile,
      extra: [`loadBalancer: { addresses: ["${pool}"] }`],
    });
    const ccm = await startCcm([
      `--kubeconfig=${api.writeKubeconfig(dir)}`,
      '--cloud-provider=konnectivity',
      `--cloud-config=${cloudConfig}`,
      '--controllers=service',
      '--leader-elect=false',
    ]);
    stopCcm = () => ccm.proc.kill();
    const servicePort = await freePort(pool);
    api.apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'bench', namespace: 'default' },
      spec: {
        type: 'LoadBalancer',
        ports: [{ name: 'tcp', protocol: 'TCP', port: servicePort, targetPort: 8080, nodePort: targetPort }],
      },
    });
    await waitFor('the bench Service has its load balancer', () => {
      const svc = api.get('services', 'default', 'bench') as
        { status?: { loadBalancer?: { ingress?: { ip?: string }[] } } } | undefined;
      return svc?.status?.loadBalancer?.ingress?.[0]?.ip === pool;
    });
    const balancer = await figures(s.plainTcp, `${pool}:${servicePort}`, bytes, connections);
    const proxy = await figures((a) => dial(cluster.frontend, a), options.target, bytes, connections);
    return { bytes, balancer, proxy };
  } finally {
    await stopCcm();
    await api.stop();
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The rows as a markdown table: the balancer beside the proxy alone. */
export function ccmBalancerTable(result: CcmBalancerResult): string {
  const fmt = (n: number) => n.toFixed(0);
  const row = (name: string, pick: (f: BalancerFigures) => number) =>
    `| ${name} | ${fmt(pick(result.balancer))} | ${fmt(pick(result.proxy))} |`;
  return [
    '| figure | CCM load balancer (gRPC, UDS) | proxy alone (gRPC, UDS) |',
    '|---|---|---|',
    row('connections/s, sequential (connect, 1-byte echo, close)', (f) => f.sequentialConnsPerSec),
    row('connections/s, 50 at a time', (f) => f.parallelConnsPerSec),
    row(`one stream, download MB/s (${result.bytes / 1024 / 1024} MiB)`, (f) => f.downloadMBps),
    row(`one stream, upload MB/s (${result.bytes / 1024 / 1024} MiB)`, (f) => f.uploadMBps),
  ].join('\n');
}
