// The manifests run: the proxy-server of deploy/server/static-pod and the proxy-agent of
// deploy/agent, started as real processes with the command lines the kubelet would give them,
// against the fake Kubernetes API (TokenReview, Leases), and a dial through kube-apiserver's
// egress selector file (deploy/egress-selector/grpc-uds.yaml) reaches a target.
// What is changed from the manifests, and only this: absolute paths are mapped under a
// temporary folder (the host and the container filesystems), listening ports are 0 (read back
// from the logs), and the downward API and the agent's ConfigMap name this machine (node-1 at
// 127.0.0.1, the server at 127.0.0.1 on its real agent port).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  egressDialer,
  parseEgressSelectorConfiguration,
} from '../../ccm-integration/egress-selector/index.js';
import { FakeKubeApi } from '../support/fake-kube-api.js';
import { testPki } from '../support/pki.js';
import { spawnBin, type Proc } from '../support/processes.js';
import { LabTarget, readAll, writeAll } from '../support/targets.js';
import { waitFor } from '../support/wait.js';
import { containerEnv, expandedArgs, pathFlags, rootedArgs } from './command-lines.js';
import {
  build,
  flagValue,
  kubectlMissing,
  mountFor,
  ourContainers,
  ROOT,
  type RunnableContainer,
} from './manifests.js';

/** Listening ports of each binary: set to 0 here and read back from the start-up log. */
const PORT_FLAGS = {
  'proxy-server': ['agent-port', 'health-port', 'admin-port'],
  'proxy-agent': ['health-server-port', 'admin-server-port'],
} as const;

function withPortsZero(args: string[], flags: readonly string[]): string[] {
  return args.map((a) => {
    const name = /^--([^=]+)=/.exec(a)?.[1];
    return name !== undefined && flags.includes(name) ? `--${name}=0` : a;
  });
}

function theContainer(entry: string, binary: 'proxy-server' | 'proxy-agent'): RunnableContainer {
  const found = ourContainers(build(entry)).filter((c) => c.binary === binary);
  assert.equal(found.length, 1, `${entry} runs one ${binary}`);
  return found[0] as RunnableContainer;
}

function writeFile(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text, { mode: 0o600 });
}

describe('the manifests run', { skip: kubectlMissing ?? false }, () => {
  it('starts the static-pod server and the agent DaemonSet as written, and tunnels a dial', async (t) => {
    const root = mkdtempSync(join(tmpdir(), 'knp-run-'));
    const procs: Proc[] = [];
    const api = await new FakeKubeApi().start();
    const target = await new LabTarget('behind-the-agent').start();
    t.after(async () => {
      for (const p of procs) await p.kill();
      (await testPki()).cleanup();
      await target.stop();
      await api.stop();
      rmSync(root, { recursive: true, force: true });
    });
    const { pki } = await testPki();

    // ---- proxy-server, as /etc/kubernetes/manifests/konnectivity-server.yaml runs it ----------
    const serverObjects = build('deploy/server/static-pod');
    const server = theContainer('deploy/server/static-pod', 'proxy-server');
    const serverEnv = containerEnv(server, serverObjects);
    assert.deepEqual(serverEnv.problems, []);
    const serverArgs = expandedArgs(server, serverEnv.env).args;
    const serverPaths = pathFlags(serverArgs);
    // What the operator puts on the host (docs/install-kubeadm.md): the agent-port certificate
    // and key, the kubeconfig of system:konnectivity-server, the socket folder.
    const onHost = (flag: string): string => {
      const path = serverPaths.get(flag);
      assert.ok(path, `the static pod sets --${flag}`);
      const at = mountFor(server.workload, server.container, path);
      const hostPath = at?.volume?.hostPath?.path;
      assert.ok(hostPath, `--${flag} ${path} is on a hostPath volume`);
      return join(root, hostPath, at.rest);
    };
    writeFile(onHost('cluster-cert'), pki.server.cert);
    writeFile(onHost('cluster-key'), pki.server.key);
    const kubeconfig = onHost('kubeconfig');
    mkdirSync(dirname(kubeconfig), { recursive: true });
    api.writeKubeconfig(dirname(kubeconfig), kubeconfig.slice(dirname(kubeconfig).length + 1));
    mkdirSync(dirname(onHost('uds-name')), { recursive: true });

    const serverProc = spawnBin(
      'proxy-server',
      withPortsZero(rootedArgs(serverArgs, root), PORT_FLAGS['proxy-server']),
    );
    procs.push(serverProc);
    const started = await serverProc.waitLog('proxy-server started');
    const agentPort = started.agentPort as number;
    const healthPort = started.healthPort as number;

    // ---- proxy-agent, as the DaemonSet runs it ------------------------------------------------
    const agentObjects = build('deploy/agent');
    const agent = theContainer('deploy/agent', 'proxy-agent');
    const agentEnv = containerEnv(agent, agentObjects);
    assert.deepEqual(agentEnv.problems, []);
    // The ConfigMap names the Service in the cluster; here the server is on this machine.
    agentEnv.env.set('SERVER_HOST', '127.0.0.1');
    agentEnv.env.set('SERVER_PORT', String(agentPort));
    const agentArgs = expandedArgs(agent, agentEnv.env).args;
    const agentPaths = pathFlags(agentArgs);
    // The projected volume: the token of the DaemonSet's ServiceAccount for its audience, and
    // the cluster CA (here the CA of the server's certificate).
    const tokenPath = agentPaths.get('service-account-token-path') ?? '';
    const projected = mountFor(agent.workload, agent.container, tokenPath)?.volume?.projected?.sources ?? [];
    const audience = projected.find((s) => s.serviceAccountToken)?.serviceAccountToken?.audience;
    assert.ok(audience, 'the agent token has an audience');
    const token = 'projected-token-of-node-1';
    api.tokens.set(token, {
      user: `system:serviceaccount:${agent.workload.namespace}:${agent.workload.pod.serviceAccountName ?? ''}`,
      audiences: [audience],
      // A projected token names the pod's node (Kubernetes 1.30+), and the Node its address.
      extra: { 'authentication.kubernetes.io/node-name': ['node-1'] },
    });
    api.apply({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: 'node-1' },
      spec: {},
      status: {
        addresses: [
          { type: 'InternalIP', address: '127.0.0.1' },
          { type: 'Hostname', address: 'node-1' },
        ],
      },
    });
    writeFile(join(root, tokenPath), `${token}\n`);
    writeFile(join(root, agentPaths.get('ca-cert') ?? ''), pki.ca.cert);

    const agentProc = spawnBin(
      'proxy-agent',
      withPortsZero(rootedArgs(agentArgs, root), PORT_FLAGS['proxy-agent']),
    );
    procs.push(agentProc);
    await agentProc.waitLog('proxy-agent started');

    // ---- the agent is admitted (TokenReview) and the server becomes ready -------------------
    await waitFor('server ready (an agent connected)', async () => {
      const res = await fetch(`http://127.0.0.1:${healthPort}/readyz`);
      await res.body?.cancel();
      return res.status === 200 || undefined;
    });
    assert.ok(api.count('POST', '/apis/authentication.k8s.io/v1/tokenreviews') > 0, 'the token was reviewed');
    assert.equal(serverProc.find('agent refused: authentication failed'), undefined);

    // ---- the server publishes its Lease, named after the node (--server-id=$(NODE_NAME)) ------
    const leaseNamespace = flagValue(serverArgs, 'lease-namespace') ?? '';
    await api.waitFor('the server Lease', () =>
      api.leases.get(`${leaseNamespace}/konnectivity-proxy-server-node-1`),
    );

    // ---- kube-apiserver's egress selector file reaches the target through the tunnel -------
    const egressText = readFileSync(join(ROOT, 'deploy/egress-selector/grpc-uds.yaml'), 'utf8');
    const egress = parseEgressSelectorConfiguration(egressText, 'grpc-uds.yaml');
    const cluster = egress.selections.cluster;
    assert.ok(cluster?.proxyProtocol === 'GRPC' && cluster.transport.kind === 'uds');
    cluster.transport.udsName = join(root, cluster.transport.udsName);
    const dialer = egressDialer(egress, 'cluster');
    t.after(() => {
      dialer.close();
    });

    const socket = await dialer.dial('127.0.0.1', target.port, { timeoutMs: 10_000 });
    const answer = readAll(socket);
    await writeAll(socket, [Buffer.from('id\n')]);
    assert.equal((await answer).toString(), 'behind-the-agent\n');

    const body = await new Promise<string>((resolve, reject) => {
      const req = http.get(
        { host: '127.0.0.1', port: target.port, path: '/', agent: dialer.httpAgent() },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => {
            resolve(text);
          });
        },
      );
      req.on('error', reject);
    });
    assert.equal(body, 'hello from behind-the-agent\n');
  });
});
