// Cross-checks between the built manifests, the egress selector files and the binaries' flags:
// the misconfigurations that build and validate fine and then fail in a cluster.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseEgressSelectorConfiguration } from '../../ccm-integration/egress-selector/config.js';
import { parseKonnectivityCloudConfig } from '../../ccm-integration/ccm/cloud/konnectivity/config.js';
import { parseFlags } from '../../common/flags/flag-set.js';
import { containerEnv, expandedArgs, FLAG_TABLES } from './command-lines.js';
import {
  build,
  find,
  kubectlMissing,
  kustomizeEntryPoints,
  labelsMatch,
  mountFor,
  only,
  ourContainers,
  readYaml,
  resolvePort,
  ROOT,
  workloads,
  type BinaryName,
  type KubeObject,
  type RunnableContainer,
} from './manifests.js';

const skip = kubectlMissing ?? false;

interface Located extends RunnableContainer {
  entry: string;
  objects: KubeObject[];
  /** Flag values as the binary reads them: explicit ones, else the table's defaults. */
  flags: Record<string, unknown>;
  args: string[];
}

/** Every container of ours in every entry point, with its parsed flags. */
function located(): Located[] {
  const out: Located[] = [];
  for (const entry of kustomizeEntryPoints()) {
    const objects = build(entry);
    for (const rc of ourContainers(objects)) {
      const { env } = containerEnv(rc, objects);
      const { args } = expandedArgs(rc, env);
      const flags = parseFlags(FLAG_TABLES[rc.binary], args).values as Record<string, unknown>;
      out.push({ ...rc, entry, objects, flags, args });
    }
  }
  return out;
}

const str = (c: Located, flag: string): string => String(c.flags[flag]);
const num = (c: Located, flag: string): number => Number(c.flags[flag]);
const of = (all: Located[], binary: BinaryName): Located[] => all.filter((c) => c.binary === binary);
const where = (c: Located): string => `${c.entry}: ${c.workload.kind} ${c.workload.name}`;
const isLoopback = (host: string): boolean => host === 'localhost' || /^127\.|^::1$/.test(host);

/** Where each binary serves health and metrics, by flag. */
const ENDPOINTS: Record<BinaryName, { healthPort: string; healthHost: string; metrics: [string, string][] }> =
  {
    'proxy-server': {
      healthPort: 'health-port',
      healthHost: 'health-bind-address',
      metrics: [['admin-port', 'admin-bind-address']],
    },
    'proxy-agent': {
      healthPort: 'health-server-port',
      healthHost: 'health-server-host',
      metrics: [
        ['health-server-port', 'health-server-host'],
        ['admin-server-port', 'admin-bind-address'],
      ],
    },
    'konnectivity-ccm': {
      healthPort: 'secure-port',
      healthHost: 'bind-address',
      metrics: [['secure-port', 'bind-address']],
    },
  };

/** Container port names and the flag whose port they must be. */
const PORT_FLAGS: Record<BinaryName, Record<string, string>> = {
  'proxy-server': {
    frontend: 'server-port',
    agent: 'agent-port',
    health: 'health-port',
    admin: 'admin-port',
  },
  'proxy-agent': { health: 'health-server-port', admin: 'admin-server-port' },
  'konnectivity-ccm': { metrics: 'secure-port' },
};

describe('deploy/ cross-checks', { skip }, () => {
  const all = skip ? [] : located();
  const servers = of(all, 'proxy-server');
  const agents = of(all, 'proxy-agent');
  const ccms = of(all, 'konnectivity-ccm');

  it('finds the servers, agents and CCMs it checks', () => {
    assert.ok(servers.some((s) => s.entry === 'deploy/server/static-pod'));
    assert.ok(servers.some((s) => s.entry === 'deploy/server/deployment'));
    assert.ok(agents.some((a) => a.entry === 'deploy/agent/ha'));
    assert.ok(ccms.some((c) => c.entry === 'deploy/ccm'));
  });

  it('runs one image, tagged with the package version, with a command that is a package bin', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
      version: string;
      bin: Record<string, string>;
    };
    for (const c of all) {
      assert.equal(c.container.image, `konnectivity-ts:${pkg.version}`, where(c));
      const bin = c.container.command?.[0]?.slice(1) ?? '';
      assert.ok(bin in pkg.bin, `${where(c)}: ${bin} is not a bin of package.json`);
    }
  });

  it('probes the health port the flags set, over HTTP, on an address the process listens on', () => {
    for (const c of all) {
      const endpoint = ENDPOINTS[c.binary];
      const port = num(c, endpoint.healthPort);
      const bind = str(c, endpoint.healthHost);
      for (const [kind, probe] of [
        ['liveness', c.container.livenessProbe],
        ['readiness', c.container.readinessProbe],
      ] as const) {
        const get = probe?.httpGet;
        assert.ok(get, `${where(c)}: no ${kind} probe`);
        assert.equal(resolvePort(c.container, get.port), port, `${where(c)}: ${kind} probe port`);
        assert.equal(get.scheme ?? 'HTTP', 'HTTP', `${where(c)}: ${kind} probe scheme (plain HTTP)`);
        assert.equal(get.path, kind === 'liveness' ? '/healthz' : '/readyz', `${where(c)}: ${kind} path`);
        if (bind !== '' && bind !== '0.0.0.0' && bind !== '::') {
          // Bound to one address: the probe must name it, and only the host network has it.
          assert.equal(get.host, bind, `${where(c)}: ${kind} probe host, the port binds ${bind}`);
          assert.ok(c.workload.pod.hostNetwork, `${where(c)}: probe of ${bind} needs hostNetwork`);
        }
      }
    }
  });

  it('names each container port after the flag that sets it, with the same number', () => {
    for (const c of all) {
      for (const p of c.container.ports ?? []) {
        const flag = PORT_FLAGS[c.binary][p.name ?? ''];
        assert.ok(flag, `${where(c)}: container port ${p.name ?? p.containerPort} is not one it serves`);
        assert.equal(p.containerPort, num(c, flag), `${where(c)}: port ${p.name ?? ''} vs --${flag}`);
        if (c.workload.pod.hostNetwork && p.hostPort !== undefined) {
          assert.equal(
            p.hostPort,
            p.containerPort,
            `${where(c)}: hostNetwork needs hostPort = containerPort`,
          );
        }
      }
    }
  });

  it('mounts every volume and every file the flags name, read-only except the socket folder', () => {
    for (const c of all) {
      const volumes = new Set((c.workload.pod.volumes ?? []).map((v) => v.name));
      const mounted = new Set((c.container.volumeMounts ?? []).map((m) => m.name));
      for (const m of mounted) assert.ok(volumes.has(m), `${where(c)}: mount of missing volume ${m}`);
      for (const v of volumes) assert.ok(mounted.has(v), `${where(c)}: volume ${v} is never mounted`);
      const uds = c.binary === 'proxy-server' ? str(c, 'uds-name') : '';
      for (const arg of c.args) {
        const path = /^--[^=]+=(\/.*)$/.exec(arg)?.[1];
        if (!path) continue;
        const at = mountFor(c.workload, c.container, path);
        assert.ok(at, `${where(c)}: ${arg} is on no volume (the image's root is read-only)`);
        if (path === uds)
          assert.notEqual(at.mount.readOnly, true, `${where(c)}: the socket folder must be writable`);
        else assert.equal(at.mount.readOnly, true, `${where(c)}: ${arg} is on a writable mount`);
      }
    }
  });

  it('defines every $(VAR) that an arg names, from values the kubelet can resolve', () => {
    for (const c of all) {
      const { env, problems } = containerEnv(c, c.objects);
      const { problems: argProblems } = expandedArgs(c, env);
      assert.deepEqual([...problems, ...argProblems], [], where(c));
    }
  });

  it('runs non-root on a read-only root filesystem, without privilege escalation', () => {
    for (const c of all) {
      assert.equal(c.workload.pod.securityContext?.runAsNonRoot, true, where(c));
      assert.equal(c.container.securityContext?.readOnlyRootFilesystem, true, where(c));
      assert.equal(c.container.securityContext.allowPrivilegeEscalation, false, where(c));
    }
  });

  it('gives kube-apiserver, the static pod and the CCM one socket in one shared host folder', () => {
    const staticPod = servers.find((s) => s.entry === 'deploy/server/static-pod');
    assert.ok(staticPod);
    const uds = str(staticPod, 'uds-name');
    assert.equal(str(staticPod, 'mode'), 'grpc');
    const socketDir = dirname(uds);
    const serverMount = mountFor(staticPod.workload, staticPod.container, uds);
    assert.equal(
      serverMount?.volume?.hostPath?.path,
      socketDir,
      'the server socket folder is the host folder',
    );
    assert.equal(serverMount.mount.mountPath, socketDir, 'mounted at the same path as on the host');

    const grpc = parseEgressSelectorConfiguration(
      readFileSync(join(ROOT, 'deploy/egress-selector/grpc-uds.yaml'), 'utf8'),
      'grpc-uds.yaml',
    );
    const cluster = grpc.selections.cluster;
    assert.equal(cluster?.proxyProtocol, 'GRPC');
    assert.deepEqual(cluster.transport, { kind: 'uds', udsName: uds }, 'grpc-uds.yaml udsName = --uds-name');
    const httpUds = parseEgressSelectorConfiguration(
      readFileSync(join(ROOT, 'deploy/egress-selector/http-connect-uds.yaml'), 'utf8'),
      'http-connect-uds.yaml',
    ).selections.cluster;
    assert.equal(httpUds?.proxyProtocol, 'HTTPConnect');
    assert.deepEqual(httpUds.transport, { kind: 'uds', udsName: uds });

    // kube-apiserver (kubeadm): the config file and the socket folder are mounted where they are.
    const kubeadm = readYaml('deploy/egress-selector/kubeadm-cluster-configuration.yaml') as {
      apiServer: {
        extraArgs: { name: string; value: string }[];
        extraVolumes: { hostPath: string; mountPath: string; readOnly?: boolean; pathType?: string }[];
      };
    };
    const configFile = kubeadm.apiServer.extraArgs.find(
      (a) => a.name === 'egress-selector-config-file',
    )?.value;
    assert.ok(configFile, 'kube-apiserver gets --egress-selector-config-file');
    const volumes = kubeadm.apiServer.extraVolumes;
    assert.ok(
      volumes.some((v) => v.hostPath === configFile && v.mountPath === configFile && v.pathType === 'File'),
      `${configFile} is mounted into kube-apiserver`,
    );
    assert.ok(
      volumes.some((v) => v.hostPath === socketDir && v.mountPath === socketDir),
      `${socketDir} is mounted into kube-apiserver at the same path`,
    );

    // The CCM dials through the same socket, from the same host folder.
    for (const ccm of ccms) {
      const egress = str(ccm, 'egress-selector-config-file');
      const configMapVolume = mountFor(ccm.workload, ccm.container, egress);
      const cmName = configMapVolume?.volume?.configMap?.name;
      assert.ok(cmName, `${where(ccm)}: ${egress} comes from a ConfigMap`);
      const data = only(ccm.objects, 'ConfigMap', cmName).data as Record<string, string>;
      const ccmEgress = parseEgressSelectorConfiguration(data[configMapVolume.rest] ?? '', egress);
      const ccmCluster = ccmEgress.selections.cluster;
      assert.equal(ccmCluster?.proxyProtocol, 'GRPC', where(ccm));
      assert.deepEqual(ccmCluster.transport, { kind: 'uds', udsName: uds }, where(ccm));
      const sock = mountFor(ccm.workload, ccm.container, uds);
      assert.equal(sock?.volume?.hostPath?.path, socketDir, `${where(ccm)}: mounts the socket folder`);
      assert.ok(ccm.workload.pod.hostNetwork, `${where(ccm)}: runs on the host network`);
      // The socket is 0600 (--uds-socket-mode): only its owner connects, unless kube-apiserver's root.
      if (str(staticPod, 'uds-socket-mode') === '0600') {
        assert.equal(
          ccm.workload.pod.securityContext?.runAsUser,
          staticPod.workload.pod.securityContext?.runAsUser,
          `${where(ccm)}: runs as the socket's owner`,
        );
      }
    }
  });

  it('points the mTLS egress selector at the frontend Service of the Deployment shape', () => {
    const server = servers.find((s) => s.entry === 'deploy/server/deployment');
    assert.ok(server);
    assert.equal(str(server, 'mode'), 'http-connect');
    const doc = readYaml('deploy/egress-selector/http-connect-mtls.yaml') as {
      egressSelections: { connection: { proxyProtocol: string; transport: { tcp: { url: string } } } }[];
    };
    const connection = doc.egressSelections[0]?.connection;
    assert.equal(connection?.proxyProtocol, 'HTTPConnect');
    const url = new URL(connection.transport.tcp.url);
    const [serviceName, namespace] = url.hostname.split('.');
    const service = only(server.objects, 'Service', serviceName);
    assert.equal(service.metadata.namespace, namespace, 'the URL names the Service namespace');
    const spec = service.spec as {
      ports: { port: number; targetPort: string | number }[];
      selector: Record<string, string>;
    };
    const port = spec.ports.find((p) => p.port === Number(url.port));
    assert.ok(port, `the Service has port ${url.port}`);
    assert.equal(
      resolvePort(server.container, port.targetPort),
      num(server, 'server-port'),
      'targetPort = --server-port',
    );
    assert.ok(labelsMatch(spec.selector, server.workload.podLabels));
  });

  it('gives agents a token for the audience, account and namespace the servers check', () => {
    for (const agent of agents) {
      const tokenPath = str(agent, 'service-account-token-path');
      const at = mountFor(agent.workload, agent.container, tokenPath);
      const sources = at?.volume?.projected?.sources ?? [];
      const token = sources.find((s) => s.serviceAccountToken?.path === at?.rest)?.serviceAccountToken;
      assert.ok(token, `${where(agent)}: ${tokenPath} is a projected ServiceAccount token`);
      assert.ok((token.expirationSeconds ?? 3600) >= 600, `${where(agent)}: expirationSeconds >= 600`);
      const ca = mountFor(agent.workload, agent.container, str(agent, 'ca-cert'));
      assert.ok(ca, `${where(agent)}: --ca-cert is mounted`);
      for (const server of servers) {
        const pair = `${where(agent)} vs ${where(server)}`;
        assert.equal(token.audience, str(server, 'authentication-audience'), `${pair}: audience`);
        assert.equal(agent.workload.pod.serviceAccountName, str(server, 'agent-service-account'), pair);
        assert.equal(agent.workload.namespace, str(server, 'agent-namespace'), `${pair}: namespace`);
      }
      const account = only(agent.objects, 'ServiceAccount', agent.workload.pod.serviceAccountName);
      assert.equal(account.metadata.namespace, agent.workload.namespace);
    }
  });

  it('binds RBAC to the ServiceAccounts the workloads use, to roles that exist', () => {
    const builtIn = new Set(['system:auth-delegator']);
    for (const entry of kustomizeEntryPoints()) {
      const objects = build(entry);
      for (const w of workloads(objects)) {
        if (w.kind === 'Pod') continue; // a static pod has no ServiceAccount
        const name = w.pod.serviceAccountName ?? 'default';
        assert.equal(
          find(objects, 'ServiceAccount', name).filter((a) => a.metadata.namespace === w.namespace).length,
          1,
          `${entry}: ${w.kind} ${w.name} uses ServiceAccount ${w.namespace}/${name}, not in this build`,
        );
      }
      for (const binding of [...find(objects, 'RoleBinding'), ...find(objects, 'ClusterRoleBinding')]) {
        const roleRef = binding.roleRef as { kind: string; name: string };
        const role = find(objects, roleRef.kind, roleRef.name).filter(
          (r) => roleRef.kind === 'ClusterRole' || r.metadata.namespace === binding.metadata.namespace,
        );
        assert.ok(
          role.length === 1 || builtIn.has(roleRef.name),
          `${entry}: ${binding.metadata.name} → ${roleRef.name}`,
        );
        for (const s of binding.subjects as { kind: string; name: string; namespace?: string }[]) {
          if (s.kind !== 'ServiceAccount') continue;
          const account = find(objects, 'ServiceAccount', s.name).filter(
            (a) => a.metadata.namespace === s.namespace,
          );
          assert.equal(
            account.length,
            1,
            `${entry}: ${binding.metadata.name} names ServiceAccount ${s.namespace ?? ''}/${s.name}`,
          );
          assert.ok(
            workloads(objects).some(
              (w) => w.pod.serviceAccountName === s.name && w.namespace === s.namespace,
            ),
            `${entry}: ${binding.metadata.name} binds ${s.name}, which no workload uses`,
          );
        }
      }
    }
  });

  it('grants the Lease and Node rights each binary uses, in the namespace its flags name', () => {
    const rules = (role: KubeObject) =>
      role.rules as { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
    const granted = (objects: KubeObject[], namespace: string, verb: string, name?: string): boolean =>
      find(objects, 'Role')
        .filter((r) => r.metadata.namespace === namespace)
        .some((r) =>
          rules(r).some(
            (rule) =>
              rule.apiGroups.includes('coordination.k8s.io') &&
              rule.resources.includes('leases') &&
              rule.verbs.includes(verb) &&
              (rule.resourceNames === undefined || (name !== undefined && rule.resourceNames.includes(name))),
          ),
        );
    const serverRbac = build('deploy/server/rbac');
    for (const s of servers.filter((x) => x.flags['enable-lease-controller'] === true)) {
      for (const verb of ['get', 'list', 'create', 'update', 'delete'])
        assert.ok(granted(serverRbac, str(s, 'lease-namespace'), verb), `${where(s)}: leases ${verb}`);
    }
    for (const s of servers.filter((x) => x.flags['agent-identity-binding'] !== 'off')) {
      // Identity binding lists and watches Nodes (cluster-wide).
      const nodes = find(serverRbac, 'ClusterRole').some((r) =>
        rules(r).some(
          (rule) =>
            rule.resources.includes('nodes') && ['list', 'watch'].every((v) => rule.verbs.includes(v)),
        ),
      );
      assert.ok(nodes, `${where(s)}: --agent-identity-binding needs list and watch on nodes`);
    }
    for (const a of agents.filter((x) => x.flags['count-server-leases'] === true)) {
      for (const verb of ['list', 'watch'])
        assert.ok(granted(a.objects, str(a, 'lease-namespace'), verb), `${where(a)}: leases ${verb}`);
      assert.equal(a.workload.pod.automountServiceAccountToken, true, `${where(a)}: in-cluster API token`);
      const servedLabel = servers.map((s) => str(s, 'lease-label'));
      assert.ok(
        servedLabel.every((l) => l === str(a, 'lease-label')),
        `${where(a)}: --lease-label = the servers'`,
      );
    }
    for (const c of ccms.filter((x) => x.flags['leader-elect'] === true)) {
      const ns = str(c, 'leader-elect-resource-namespace');
      const name = str(c, 'leader-elect-resource-name');
      assert.ok(granted(c.objects, ns, 'create'), `${where(c)}: create the Lease`);
      for (const verb of ['get', 'update'])
        assert.ok(granted(c.objects, ns, verb, name), `${where(c)}: ${verb} ${name}`);
    }
  });

  it('grants the CCM what its controllers call, and no more', () => {
    for (const c of ccms) {
      const role = only(c.objects, 'ClusterRole');
      const got = new Map<string, string[]>();
      for (const rule of role.rules as { resources: string[]; verbs: string[] }[]) {
        for (const r of rule.resources) got.set(r, [...(got.get(r) ?? []), ...rule.verbs].sort());
      }
      // From the client-node calls in ccm-integration/ccm/ (and the service controller of issue 15).
      assert.deepEqual(Object.fromEntries(got), {
        nodes: ['delete', 'get', 'list', 'patch', 'watch'],
        'nodes/status': ['patch'],
        services: ['get', 'list', 'patch', 'update', 'watch'],
        'services/status': ['patch', 'update'],
        events: ['create', 'patch'],
      });
    }
  });

  it('waits longer on SIGTERM than the server finishes connections and the agent drains', () => {
    for (const c of [...servers, ...agents]) {
      const grace = (c.workload.pod.terminationGracePeriodSeconds ?? 30) * 1000;
      const flag = c.binary === 'proxy-server' ? 'graceful-shutdown-timeout' : 'drain-timeout';
      assert.ok(num(c, flag) < grace, `${where(c)}: --${flag} ${num(c, flag)}ms >= grace ${grace}ms`);
    }
  });

  it('announces as many servers as the Deployment runs, each with its own ID', () => {
    for (const s of servers) {
      assert.notEqual(str(s, 'server-id'), '', `${where(s)}: --server-id`);
      const raw = (s.container.args ?? []).find((a) => a.startsWith('--server-id='));
      assert.match(raw ?? '', /\$\((POD_NAME|NODE_NAME)\)/, `${where(s)}: --server-id from the downward API`);
      if (s.workload.kind === 'Deployment') {
        assert.equal(num(s, 'server-count'), s.workload.replicas, `${where(s)}: --server-count = replicas`);
      }
    }
  });

  it('routes agent Services to every server, ready or not, and the frontend only to ready ones', () => {
    // Services and the pods they select may come from different entry points (the static pod
    // is a file on the node, its Service is applied): look at every Service of every build.
    const services = kustomizeEntryPoints().flatMap((entry) => find(build(entry), 'Service'));
    let checked = 0;
    for (const s of servers) {
      for (const svc of services) {
        const spec = svc.spec as {
          selector: Record<string, string>;
          publishNotReadyAddresses?: boolean;
          ports: { targetPort: string | number }[];
        };
        if (svc.metadata.namespace !== s.workload.namespace) continue;
        if (!labelsMatch(spec.selector, s.workload.podLabels)) continue;
        checked++;
        for (const port of spec.ports) {
          const target = resolvePort(s.container, port.targetPort);
          assert.ok(
            target !== undefined,
            `${svc.metadata.name}: targetPort ${port.targetPort} is not a container port`,
          );
          if (target === num(s, 'agent-port')) {
            // Ready means "an agent is connected": without this no first agent could connect.
            assert.equal(
              spec.publishNotReadyAddresses,
              true,
              `${svc.metadata.name} must publish not-ready servers`,
            );
          }
          if (target === num(s, 'server-port')) assert.notEqual(spec.publishNotReadyAddresses, true);
        }
      }
    }
    assert.ok(checked >= 3, 'the Services of both server shapes were checked');
  });

  it('keeps the disruption budget on the servers, evicting unready ones', () => {
    const server = servers.find((s) => s.workload.kind === 'Deployment');
    assert.ok(server);
    const pdb = only(server.objects, 'PodDisruptionBudget');
    const spec = pdb.spec as {
      selector: { matchLabels: Record<string, string> };
      unhealthyPodEvictionPolicy?: string;
    };
    assert.ok(labelsMatch(spec.selector.matchLabels, server.workload.podLabels));
    assert.equal(spec.unhealthyPodEvictionPolicy, 'AlwaysAllow');
  });

  it('runs agents on every node, critical, and servers critical', () => {
    for (const a of agents) {
      assert.ok(
        a.workload.pod.tolerations?.some(
          (t) => t.operator === 'Exists' && t.key === undefined && t.effect === undefined,
        ),
      );
      assert.equal(a.workload.pod.priorityClassName, 'system-node-critical');
      assert.equal(a.workload.kind, 'DaemonSet');
    }
    for (const s of servers.filter((x) => x.workload.kind === 'Pod')) {
      assert.equal(s.workload.pod.priorityClassName, 'system-node-critical');
      assert.ok(s.workload.pod.hostNetwork);
    }
  });

  it("gives the CCM a cloud-config that its provider loads, naming the local server's admin port", () => {
    const staticPod = servers.find((s) => s.entry === 'deploy/server/static-pod');
    assert.ok(staticPod);
    for (const c of ccms) {
      assert.equal(str(c, 'cloud-provider'), 'konnectivity');
      const path = str(c, 'cloud-config');
      const at = mountFor(c.workload, c.container, path);
      const cm = only(c.objects, 'ConfigMap', at?.volume?.configMap?.name);
      const text = (cm.data as Record<string, string>)[at?.rest ?? ''] ?? '';
      const config = parseKonnectivityCloudConfig(text, path);
      for (const server of config.servers) {
        const url = new URL(server);
        assert.equal(Number(url.port), num(staticPod, 'admin-port'), `${server}: --admin-port`);
        const adminBind = str(staticPod, 'admin-bind-address');
        if (isLoopback(url.hostname)) {
          assert.ok(c.workload.pod.hostNetwork, 'a loopback admin URL needs the host network');
          assert.ok(
            adminBind === url.hostname || adminBind === '' || adminBind === '0.0.0.0',
            `${server} vs ${adminBind}`,
          );
        }
      }
    }
  });
});
