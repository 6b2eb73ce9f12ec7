// Real konnectivity-ccm child processes (bin/konnectivity-ccm.js), health/metrics on port 0 of
// loopback; the port and the leader-election identity are read back from the start-up log line.
// The children join processes.ts's set, so every one is killed when the test process ends.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Proc } from './processes.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export const CCM_STARTED = 'konnectivity-ccm started';

export interface CcmInfo {
  proc: Proc;
  /** --secure-port as bound: /healthz, /readyz, /metrics. */
  port: number;
  /** The leader-election identity (<hostname>_<uuid>). */
  identity: string;
}

/** Spawns the CCM with `args` as given (for exit-code tests). */
export function spawnCcm(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const nodeArgs = (process.env.KNP_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, join(ROOT, 'bin', 'konnectivity-ccm.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Proc(child);
}

/** Starts the CCM on a free loopback port and waits for its start-up line. */
export async function startCcm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CcmInfo> {
  const proc = spawnCcm(['--secure-port=0', '--bind-address=127.0.0.1', ...args], env);
  const started = await proc.waitLog(CCM_STARTED);
  return { proc, port: started.securePort as number, identity: started.identity as string };
}

/** Writes an EgressSelectorConfiguration whose `cluster` selection is GRPC over `udsName`; returns its path. */
export function writeGrpcUdsEgressConfig(
  dir: string,
  udsName: string,
  name = 'egress-selector.yaml',
): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    [
      'apiVersion: apiserver.k8s.io/v1beta1',
      'kind: EgressSelectorConfiguration',
      'egressSelections:',
      '- name: cluster',
      '  connection:',
      '    proxyProtocol: GRPC',
      '    transport:',
      '      uds:',
      `        udsName: ${udsName}`,
      '',
    ].join('\n'),
  );
  return path;
}

/**
 * Writes the konnectivity provider's cloud config: the servers whose /agents list the nodes,
 * the egress selector file to dial through, and `extra` lines; returns its path.
 */
export function writeKonnectivityCloudConfig(
  dir: string,
  config: { servers: string[]; egressFile: string; extra?: string[] },
  name = 'cloud.yaml',
): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    [
      `servers: ${JSON.stringify(config.servers)}`,
      `egressSelectorConfigFile: ${config.egressFile}`,
      ...(config.extra ?? []),
    ].join('\n'),
  );
  return path;
}
