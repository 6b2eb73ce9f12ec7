// The --cloud-config of the konnectivity cloud provider: what it accepts (with its defaults),
// and every refusal as a CloudConfigError whose text names the file and the key.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudConfigError } from '../../../ccm-integration/ccm/cloud/cloud-provider.js';
import {
  loadKonnectivityCloudConfig,
  parseKonnectivityCloudConfig,
} from '../../../ccm-integration/ccm/cloud/konnectivity/config.js';
import { createKonnectivityProvider } from '../../../ccm-integration/ccm/cloud/konnectivity/provider.js';
import { createLogger } from '../../../common/log.js';
import type { KubeClient } from '../../../common/kube/client.js';

const SOURCE = 'cloud.yaml';
const PREFIX = `--cloud-config ${SOURCE}: `;
const SERVERS = 'servers: ["http://127.0.0.1:8095"]';

function refusal(text: string): string {
  let caught: unknown;
  try {
    parseKonnectivityCloudConfig(text, SOURCE);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof CloudConfigError, `expected a CloudConfigError, got ${String(caught)}`);
  assert.equal(caught.code, 'KNP_CONFIG');
  assert.ok(caught.message.startsWith(PREFIX), caught.message);
  return caught.message.slice(PREFIX.length);
}

describe('konnectivity cloud-config', () => {
  it('needs only servers; everything else has its default', () => {
    const config = parseKonnectivityCloudConfig(SERVERS, SOURCE);
    assert.deepEqual(config, {
      egressSelectorConfigFile: '',
      egressSelection: 'cluster',
      servers: ['http://127.0.0.1:8095'],
      shutdownGraceMs: 40_000,
      nodeDeletionGraceMs: 0,
      agentCacheTtlMs: 2000,
      kubeletPort: 10250,
      loadBalancer: undefined,
    });
  });

  it('reads every key', () => {
    const config = parseKonnectivityCloudConfig(
      [
        'egressSelectorConfigFile: /etc/kubernetes/egress-selector-configuration.yaml',
        'egressSelection: controlplane',
        'servers: ["http://10.0.0.1:8095/", "https://10.0.0.2:8095/admin"]',
        'shutdownGrace: 1m30s',
        'nodeDeletionGrace: 10m',
        'agentCacheTTL: 500ms',
        'kubeletPort: 10255',
        'loadBalancer:',
        '  addresses: ["192.0.2.10-192.0.2.20", "198.51.100.0/28"]',
        '  healthCheckInterval: 5s',
      ].join('\n'),
      SOURCE,
    );
    assert.deepEqual(config, {
      egressSelectorConfigFile: '/etc/kubernetes/egress-selector-configuration.yaml',
      egressSelection: 'controlplane',
      servers: ['http://10.0.0.1:8095', 'https://10.0.0.2:8095/admin'],
      shutdownGraceMs: 90_000,
      nodeDeletionGraceMs: 600_000,
      agentCacheTtlMs: 500,
      kubeletPort: 10255,
      loadBalancer: {
        addresses: ['192.0.2.10-192.0.2.20', '198.51.100.0/28'],
        pool: [
          { family: 4, first: 3221225994n, last: 3221226004n },
          { family: 4, first: 3325256704n, last: 3325256719n },
        ],
        healthCheckIntervalMs: 5000,
        healthCheckTimeoutMs: 2000,
        drainTimeoutMs: 10_000,
      },
    });
  });

  it('takes a bare 0 as a zero duration', () => {
    const config = parseKonnectivityCloudConfig(`${SERVERS}\nshutdownGrace: 0\nagentCacheTTL: "0"`, SOURCE);
    assert.equal(config.shutdownGraceMs, 0);
    assert.equal(config.agentCacheTtlMs, 0);
  });

  const refused: [string, string, string][] = [
    [
      'an unknown key',
      `${SERVERS}\nshutdownGracePeriod: 40s`,
      'shutdownGracePeriod: unknown key (known keys: egressSelectorConfigFile, egressSelection, servers, shutdownGrace, nodeDeletionGrace, agentCacheTTL, kubeletPort, loadBalancer)',
    ],
    [
      'an unknown loadBalancer key',
      `${SERVERS}\nloadBalancer:\n  pool: []`,
      'loadBalancer.pool: unknown key (known keys: addresses, healthCheckInterval, healthCheckTimeout, drainTimeout)',
    ],
    [
      'no servers',
      'kubeletPort: 10250',
      'servers: is required: the admin URLs of the proxy-servers, e.g. ["http://127.0.0.1:8095"]',
    ],
    [
      'an empty file',
      '',
      'servers: is required: the admin URLs of the proxy-servers, e.g. ["http://127.0.0.1:8095"]',
    ],
    ['an empty server list', 'servers: []', 'servers: must be a non-empty list of URLs, got a list ([])'],
    [
      'servers as a string',
      'servers: http://127.0.0.1:8095',
      'servers: must be a non-empty list of URLs, got string "http://127.0.0.1:8095"',
    ],
    [
      'a server that is not a string',
      'servers: ["http://a:1", 8095]',
      'servers[1]: must be a URL string, got number 8095',
    ],
    [
      'a server that is not a URL',
      'servers: ["127.0.0.1:8095x"]',
      'servers[0]: "127.0.0.1:8095x" is not a URL (e.g. http://127.0.0.1:8095)',
    ],
    [
      'a server that is not http',
      'servers: ["ftp://127.0.0.1:8095"]',
      'servers[0]: "ftp://127.0.0.1:8095" must be an http:// or https:// URL',
    ],
    [
      'a server with a query',
      'servers: ["http://127.0.0.1:8095/?x=1"]',
      'servers[0]: "http://127.0.0.1:8095/?x=1" must not have a query or a fragment',
    ],
    [
      'a server listed twice',
      'servers: ["http://127.0.0.1:8095", "http://127.0.0.1:8095/"]',
      'servers[1]: "http://127.0.0.1:8095/" is listed twice',
    ],
    [
      'a duration that is not one',
      `${SERVERS}\nshutdownGrace: forty`,
      'shutdownGrace: "forty" is not a Go duration (examples: 500ms, 40s, 5m, 1h30m)',
    ],
    [
      'a duration without its unit',
      `${SERVERS}\nnodeDeletionGrace: 40`,
      'nodeDeletionGrace: must be a Go duration string such as 40s, 5m or 1h30m, got number 40',
    ],
    ['a negative duration', `${SERVERS}\nagentCacheTTL: -2s`, 'agentCacheTTL: "-2s" must not be negative'],
    [
      'an empty duration',
      `${SERVERS}\nshutdownGrace:`,
      'shutdownGrace: must be a Go duration string such as 40s, 5m or 1h30m, got null (an empty value)',
    ],
    [
      'port 0',
      `${SERVERS}\nkubeletPort: 0`,
      'kubeletPort: must be a port number from 1 to 65535, got number 0',
    ],
    [
      'port 70000',
      `${SERVERS}\nkubeletPort: 70000`,
      'kubeletPort: must be a port number from 1 to 65535, got number 70000',
    ],
    [
      'a port as text',
      `${SERVERS}\nkubeletPort: "10250"`,
      'kubeletPort: must be a port number from 1 to 65535, got string "10250"',
    ],
    [
      'an unknown selection',
      `${SERVERS}\negressSelectorConfigFile: /e.yaml\negressSelection: master`,
      'egressSelection: "master" is not one of cluster, controlplane, etcd',
    ],
    [
      'a selection without its file',
      `${SERVERS}\negressSelection: cluster`,
      'egressSelection: is set but egressSelectorConfigFile is not (the selection names one of that file)',
    ],
    [
      'an egress file that is not a string',
      `${SERVERS}\negressSelectorConfigFile: [a]`,
      'egressSelectorConfigFile: must be a non-empty string, got a list (["a"])',
    ],
    ['a list at the top', '- servers: []', 'must be a YAML mapping of keys to values'],
    [
      'loadBalancer as a list',
      `${SERVERS}\nloadBalancer: [a]`,
      'loadBalancer: must be a mapping, got a list (["a"])',
    ],
    [
      'addresses as a string',
      `${SERVERS}\nloadBalancer:\n  addresses: 192.0.2.10`,
      'loadBalancer.addresses: must be a list of addresses, ranges or CIDRs, got string "192.0.2.10"',
    ],
    [
      'an address that is not a string',
      `${SERVERS}\nloadBalancer:\n  addresses: ["192.0.2.10", 7]`,
      'loadBalancer.addresses[1]: must be a non-empty string, got number 7',
    ],
    [
      'a bad healthCheckInterval',
      `${SERVERS}\nloadBalancer:\n  healthCheckInterval: often`,
      'loadBalancer.healthCheckInterval: "often" is not a Go duration (examples: 500ms, 40s, 5m, 1h30m)',
    ],
  ];
  for (const [what, text, message] of refused) {
    it(`refuses ${what}`, () => {
      assert.equal(refusal(text), message);
    });
  }

  it('refuses YAML it cannot read, and a key given twice', () => {
    assert.match(refusal('servers: [http://a'), /^not valid YAML: /);
    assert.match(refusal(`${SERVERS}\n${SERVERS}`), /^not valid YAML: .*[Mm]ap keys must be unique/);
  });

  describe('files', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'konnectivity-config-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('reads a file, and names it when it cannot', () => {
      const path = join(dir, 'ok.yaml');
      writeFileSync(path, SERVERS);
      assert.deepEqual(loadKonnectivityCloudConfig(path).servers, ['http://127.0.0.1:8095']);
      const missing = join(dir, 'missing.yaml');
      assert.throws(
        () => loadKonnectivityCloudConfig(missing),
        (err: unknown) => {
          assert.ok(err instanceof CloudConfigError);
          assert.match(err.message, new RegExp(`^--cloud-config ${missing}: cannot read the file: .*ENOENT`));
          return true;
        },
      );
    });

    it('needs --cloud-config at all', () => {
      assert.throws(() => loadKonnectivityCloudConfig(''), {
        name: 'CloudConfigError',
        message:
          "the konnectivity cloud provider needs --cloud-config: a YAML file with at least `servers` (the proxy-servers' admin URLs)",
      });
    });

    describe('the provider at start', () => {
      let kube: KubeClient;
      const log = createLogger({ component: 'test', level: 'silent' });
      before(async () => {
        const k8s = await import('@kubernetes/client-node');
        kube = { k8s, config: new k8s.KubeConfig() };
      });
      const start = (config: string) => {
        const path = join(dir, `provider-${Math.random().toString(36).slice(2)}.yaml`);
        writeFileSync(path, config);
        return {
          path,
          started: createKonnectivityProvider({ cloudConfigPath: path, kube, log, egress: undefined }),
        };
      };

      it('refuses to start with no egress to probe kubelets through', async () => {
        const { path, started } = start(SERVERS);
        await assert.rejects(started, {
          name: 'CloudConfigError',
          message:
            `--cloud-config ${path}: the konnectivity provider probes kubelets through the tunnel and has no egress: ` +
            'set egressSelectorConfigFile (and egressSelection) in the cloud-config, or --egress-selector-config-file',
        });
      });

      it('names egressSelectorConfigFile when that file cannot be loaded', async () => {
        const missing = join(dir, 'no-egress.yaml');
        const { path, started } = start(`${SERVERS}\negressSelectorConfigFile: ${missing}`);
        await assert.rejects(started, (err: unknown) => {
          assert.ok(err instanceof CloudConfigError);
          assert.ok(
            err.message.startsWith(`--cloud-config ${path}: egressSelectorConfigFile: `),
            err.message,
          );
          assert.match(err.message, /cannot read the file/);
          return true;
        });
      });

      it('starts with its own egress selection, and stops', async () => {
        const egress = join(dir, 'egress.yaml');
        writeFileSync(
          egress,
          [
            'apiVersion: apiserver.k8s.io/v1beta1',
            'kind: EgressSelectorConfiguration',
            'egressSelections:',
            '- name: cluster',
            '  connection:',
            '    proxyProtocol: GRPC',
            '    transport:',
            '      uds:',
            `        udsName: ${join(dir, 'konnectivity-server.socket')}`,
          ].join('\n'),
        );
        const { started } = start(`${SERVERS}\negressSelectorConfigFile: ${egress}`);
        const provider = await started;
        assert.equal(provider.name, 'konnectivity');
        assert.ok(provider.instancesV2());
        assert.equal(provider.loadBalancer(), undefined);
        await provider.stop();
      });
    });
  });
});
