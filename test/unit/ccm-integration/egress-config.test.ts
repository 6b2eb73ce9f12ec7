// kube-apiserver's EgressSelectorConfiguration: the files it accepts load into a typed structure
// with the TLS material read; every file it refuses (and the few our dialer cannot serve) is
// refused with an EgressConfigError whose message starts with the offending field's path.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  connectionFor,
  EgressConfigError,
  loadEgressSelectorConfiguration,
  parseEgressSelectorConfiguration,
  type EgressConnection,
} from '../../../ccm-integration/egress-selector/config.js';
import { testPki, type TestPki } from '../../support/pki.js';

const SOURCE = 'test.yaml';

function refused(text: string, field: string, reason: RegExp): EgressConfigError {
  let caught: unknown;
  try {
    parseEgressSelectorConfiguration(text, SOURCE);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof EgressConfigError, `expected an EgressConfigError, got ${String(caught)}`);
  assert.equal(caught.code, 'KNP_CONFIG');
  assert.equal(caught.field, field);
  if (field !== '') assert.ok(caught.message.startsWith(`${field}: `), caught.message);
  assert.match(caught.message, reason);
  assert.ok(caught.message.includes(SOURCE), caught.message);
  return caught;
}

/** A v1beta1 file with one selection whose connection is given as YAML lines. */
function oneSelection(connection: string, name = 'cluster', apiVersion = 'apiserver.k8s.io/v1beta1'): string {
  return [
    `apiVersion: ${apiVersion}`,
    'kind: EgressSelectorConfiguration',
    'egressSelections:',
    `- name: ${name}`,
    '  connection:',
    ...connection.split('\n').map((l) => `    ${l}`),
  ].join('\n');
}

function tcpSelection(url: string, tlsConfig?: Record<string, string>): string {
  const lines = ['proxyProtocol: HTTPConnect', 'transport:', '  tcp:', `    url: ${JSON.stringify(url)}`];
  if (tlsConfig) {
    lines.push('    tlsConfig:');
    for (const [k, v] of Object.entries(tlsConfig)) lines.push(`      ${k}: ${JSON.stringify(v)}`);
  }
  return oneSelection(lines.join('\n'));
}

const TCP = 'egressSelections[0].connection.transport.tcp';

describe('EgressSelectorConfiguration loader', () => {
  let pki: TestPki;
  let dir: string;
  let tlsFiles: { caBundle: string; clientCert: string; clientKey: string };

  before(async () => {
    pki = await testPki();
    dir = mkdtempSync(join(tmpdir(), 'knp-egress-config-'));
    tlsFiles = { caBundle: pki.files.ca, clientCert: pki.files.clientCert, clientKey: pki.files.clientKey };
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  describe('accepts', () => {
    it('v1beta1 YAML with GRPC over uds, an explicit Direct, and unlisted selections as Direct', () => {
      const path = join(dir, 'grpc.yaml');
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
          '        udsName: /etc/kubernetes/konnectivity-server/konnectivity-server.socket',
          '- name: controlplane',
          '  connection:',
          '    proxyProtocol: Direct',
        ].join('\n'),
      );
      const config = loadEgressSelectorConfiguration(path);
      assert.equal(config.source, path);
      assert.equal(config.apiVersion, 'apiserver.k8s.io/v1beta1');
      assert.deepEqual(config.selections.cluster, {
        proxyProtocol: 'GRPC',
        transport: { kind: 'uds', udsName: '/etc/kubernetes/konnectivity-server/konnectivity-server.socket' },
      });
      assert.deepEqual(config.selections.controlplane, { proxyProtocol: 'Direct' });
      assert.equal(config.selections.etcd, undefined);
      assert.deepEqual(connectionFor(config, 'etcd'), { proxyProtocol: 'Direct' });
    });

    it('v1alpha1 JSON with HTTPConnect over tcp and mTLS, reading the TLS files, and "master" as controlplane', () => {
      const text = JSON.stringify({
        apiVersion: 'apiserver.k8s.io/v1alpha1',
        kind: 'EgressSelectorConfiguration',
        egressSelections: [
          {
            name: 'master',
            connection: {
              proxyProtocol: 'HTTPConnect',
              transport: { tcp: { url: 'https://konnectivity.example:8131', tlsConfig: tlsFiles } },
            },
          },
        ],
      });
      const config = parseEgressSelectorConfiguration(text, SOURCE);
      const connection = config.selections.controlplane;
      assert.ok(connection && connection.proxyProtocol === 'HTTPConnect');
      const { transport } = connection;
      assert.ok(transport.kind === 'tcp');
      assert.equal(transport.host, 'konnectivity.example');
      assert.equal(transport.port, 8131);
      assert.deepEqual(transport.tls.caBundle, readFileSync(pki.files.ca));
      assert.deepEqual(transport.tls.clientCert, readFileSync(pki.files.clientCert));
      assert.deepEqual(transport.tls.clientKey, readFileSync(pki.files.clientKey));
      assert.deepEqual(transport.tls.files, tlsFiles);
    });

    it('apiserver.k8s.io/v1, an IPv6 url with the default port, and no caBundle (system roots, as kube-apiserver)', () => {
      const text = tcpSelection('https://[fd00::1]', {
        clientCert: tlsFiles.clientCert,
        clientKey: tlsFiles.clientKey,
      }).replace('v1beta1', 'v1');
      const connection = parseEgressSelectorConfiguration(text, SOURCE).selections.cluster;
      assert.ok(connection?.proxyProtocol === 'HTTPConnect' && connection.transport.kind === 'tcp');
      assert.equal(connection.transport.host, 'fd00::1');
      assert.equal(connection.transport.port, 443);
      assert.equal(connection.transport.tls.caBundle, undefined);
    });

    it('selection names in any case, as kube-apiserver compares them in lower case', () => {
      const config = parseEgressSelectorConfiguration(oneSelection('proxyProtocol: Direct', 'Etcd'), SOURCE);
      assert.deepEqual(config.selections.etcd, { proxyProtocol: 'Direct' });
    });

    it('GRPC with both uds and tcp, using uds (kube-apiserver ignores tcp for GRPC)', () => {
      const text = oneSelection(
        [
          'proxyProtocol: GRPC',
          'transport:',
          '  uds: { udsName: /run/k.sock }',
          '  tcp: { url: "ftp://x" }',
        ].join('\n'),
      );
      const expected: EgressConnection = {
        proxyProtocol: 'GRPC',
        transport: { kind: 'uds', udsName: '/run/k.sock' },
      };
      assert.deepEqual(parseEgressSelectorConfiguration(text, SOURCE).selections.cluster, expected);
    });

    it('a file with no selections: everything Direct', () => {
      const config = parseEgressSelectorConfiguration(
        'apiVersion: apiserver.k8s.io/v1beta1\nkind: EgressSelectorConfiguration\n',
        SOURCE,
      );
      assert.deepEqual(config.selections, {});
      assert.deepEqual(connectionFor(config, 'cluster'), { proxyProtocol: 'Direct' });
    });
  });

  describe('refuses', () => {
    it('a file that cannot be read, naming it and the OS error', () => {
      const missing = join(dir, 'absent.yaml');
      assert.throws(
        () => loadEgressSelectorConfiguration(missing),
        (err: unknown) =>
          err instanceof EgressConfigError &&
          err.field === '' &&
          err.message.includes(missing) &&
          err.message.includes('ENOENT'),
      );
    });

    it('text that is neither YAML nor JSON', () => {
      refused('{"apiVersion": "apiserver.k8s.io/v1beta1", ', '', /not valid YAML or JSON/);
      refused('a: b\n  c: d\n - e', '', /not valid YAML or JSON/);
    });

    it('an empty file, and a document that is not a mapping', () => {
      refused('', '', /empty/);
      refused('- a\n- b', '', /must be a mapping, not a list/);
    });

    it('another kind, or an apiVersion kube-apiserver does not serve this kind in', () => {
      refused(
        oneSelection('proxyProtocol: Direct').replace('EgressSelectorConfiguration', 'TracingConfiguration'),
        'kind',
        /"TracingConfiguration" is not supported/,
      );
      refused(
        'apiVersion: apiserver.k8s.io/v1beta1\n',
        'kind',
        /"" is not supported: expected EgressSelectorConfiguration/,
      );
      refused(
        oneSelection('proxyProtocol: Direct', 'cluster', 'apiserver.k8s.io/v2'),
        'apiVersion',
        /"apiserver.k8s.io\/v2" is not supported/,
      );
    });

    it('unknown fields, at any depth, as kube-apiserver decodes strictly', () => {
      refused(oneSelection('proxyProtocol: Direct') + '\nmetadata: {}', 'metadata', /unknown field/);
      refused(
        oneSelection('proxyProtocol: GRPC\ntransport:\n  uds: { path: /run/k.sock }'),
        'egressSelections[0].connection.transport.uds.path',
        /unknown field \(expected "udsName"\)/,
      );
    });

    it('values of the wrong type', () => {
      refused(
        'apiVersion: apiserver.k8s.io/v1beta1\nkind: EgressSelectorConfiguration\negressSelections: {}',
        'egressSelections',
        /must be a list/,
      );
      refused(
        oneSelection('proxyProtocol: Direct', '5'),
        'egressSelections[0].name',
        /must be a string, not number 5/,
      );
      refused(
        oneSelection('proxyProtocol: [GRPC]'),
        'egressSelections[0].connection.proxyProtocol',
        /must be a string, not a list/,
      );
    });

    it('an unknown selection name, and "master" in v1', () => {
      refused(
        oneSelection('proxyProtocol: Direct', 'nodes'),
        'egressSelections[0].name',
        /unsupported selection "nodes": expected one of cluster, controlplane, etcd/,
      );
      refused(oneSelection('proxyProtocol: Direct', '""'), 'egressSelections[0].name', /required/);
      refused(
        oneSelection('proxyProtocol: Direct', 'master', 'apiserver.k8s.io/v1'),
        'egressSelections[0].name',
        /"master" is only accepted by v1beta1 and v1alpha1/,
      );
    });

    it('a duplicate selection name, naming both', () => {
      const text = [
        'apiVersion: apiserver.k8s.io/v1beta1',
        'kind: EgressSelectorConfiguration',
        'egressSelections:',
        '- { name: cluster, connection: { proxyProtocol: Direct } }',
        '- { name: Cluster, connection: { proxyProtocol: Direct } }',
      ].join('\n');
      refused(
        text,
        'egressSelections[1].name',
        /duplicate selection "cluster" \(also egressSelections\[0\].name\)/,
      );
    });

    it('an unknown or missing proxyProtocol', () => {
      refused(
        oneSelection('proxyProtocol: grpc'),
        'egressSelections[0].connection.proxyProtocol',
        /unsupported proxy protocol "grpc": expected one of Direct, HTTPConnect, GRPC/,
      );
      refused(
        oneSelection('transport: { uds: { udsName: /run/k.sock } }'),
        'egressSelections[0].connection.proxyProtocol',
        /required/,
      );
    });

    it('a proxy protocol without transport', () => {
      refused(
        oneSelection('proxyProtocol: HTTPConnect'),
        'egressSelections[0].connection.transport',
        /required for proxyProtocol HTTPConnect/,
      );
      refused(
        oneSelection('proxyProtocol: GRPC\ntransport: null'),
        'egressSelections[0].connection.transport',
        /required for proxyProtocol GRPC/,
      );
    });

    it('a transport for Direct', () => {
      refused(
        oneSelection('proxyProtocol: Direct\ntransport: { uds: { udsName: /run/k.sock } }'),
        'egressSelections[0].connection.transport',
        /must be absent for proxyProtocol Direct/,
      );
    });

    it('both uds and tcp for HTTPConnect, or neither', () => {
      refused(
        oneSelection(
          'proxyProtocol: HTTPConnect\ntransport:\n  uds: { udsName: /run/k.sock }\n  tcp: { url: "https://k:8131" }',
        ),
        'egressSelections[0].connection.transport',
        /uds and tcp cannot both be set/,
      );
      refused(
        oneSelection('proxyProtocol: HTTPConnect\ntransport: {}'),
        'egressSelections[0].connection.transport',
        /one of uds or tcp must be set/,
      );
    });

    it('an empty udsName', () => {
      refused(
        oneSelection('proxyProtocol: GRPC\ntransport: { uds: { udsName: "" } }'),
        'egressSelections[0].connection.transport.uds.udsName',
        /required/,
      );
      refused(
        oneSelection('proxyProtocol: HTTPConnect\ntransport: { uds: {} }'),
        'egressSelections[0].connection.transport.uds.udsName',
        /required/,
      );
    });

    it('GRPC over tcp, as kube-apiserver does', () => {
      refused(
        oneSelection('proxyProtocol: GRPC\ntransport: { tcp: { url: "https://k:8131" } }'),
        'egressSelections[0].connection.transport.uds',
        /required for proxyProtocol GRPC: kube-apiserver does not support GRPC over tcp/,
      );
    });

    it('a tcp url that does not parse, is missing, or is neither http nor https', () => {
      refused(
        tcpSelection('https://exa mple:8131', tlsFiles),
        `${TCP}.url`,
        /"https:\/\/exa mple:8131" is not a valid URL/,
      );
      refused(
        tcpSelection('konnectivity:8131', tlsFiles),
        `${TCP}.url`,
        /supported schemes are http:\/\/ and https:\/\//,
      );
      refused(tcpSelection('', tlsFiles), `${TCP}.url`, /required/);
    });

    it('an http:// url with tlsConfig, and plain http:// at all (kube-apiserver dials tcp with TLS only)', () => {
      refused(
        tcpSelection('http://k:8131', tlsFiles),
        `${TCP}.tlsConfig`,
        /must be absent for an http:\/\/ url/,
      );
      refused(tcpSelection('http://k:8131'), `${TCP}.url`, /plain http:\/\/ is not supported/);
    });

    it('https without tlsConfig, or without either half of the client key pair', () => {
      refused(tcpSelection('https://k:8131'), `${TCP}.tlsConfig`, /required for an https:\/\/ url/);
      refused(
        tcpSelection('https://k:8131', { caBundle: tlsFiles.caBundle, clientKey: tlsFiles.clientKey }),
        `${TCP}.tlsConfig.clientCert`,
        /required/,
      );
      refused(
        tcpSelection('https://k:8131', { caBundle: tlsFiles.caBundle, clientCert: tlsFiles.clientCert }),
        `${TCP}.tlsConfig.clientKey`,
        /required/,
      );
    });

    it('TLS files that cannot be read, naming the file and the OS error', () => {
      const missing = join(dir, 'no-such-ca.pem');
      const err = refused(
        tcpSelection('https://k:8131', { ...tlsFiles, caBundle: missing }),
        `${TCP}.tlsConfig.caBundle`,
        /ENOENT/,
      );
      assert.ok(err.message.includes(`cannot read ${missing}`), err.message);
      refused(
        tcpSelection('https://k:8131', { ...tlsFiles, clientCert: dir }),
        `${TCP}.tlsConfig.clientCert`,
        /EISDIR/,
      );
      refused(
        tcpSelection('https://k:8131', { ...tlsFiles, clientKey: join(dir, 'no-key.pem') }),
        `${TCP}.tlsConfig.clientKey`,
        /no-key\.pem: ENOENT/,
      );
    });

    it("TLS files that hold no certificate or key, or a key that is not the certificate's", () => {
      const junk = join(dir, 'junk.pem');
      writeFileSync(junk, 'not a certificate\n');
      refused(
        tcpSelection('https://k:8131', { ...tlsFiles, caBundle: junk }),
        `${TCP}.tlsConfig.caBundle`,
        /is not a PEM certificate/,
      );
      refused(
        tcpSelection('https://k:8131', { ...tlsFiles, clientCert: junk }),
        `${TCP}.tlsConfig.clientCert`,
        /is not a PEM certificate/,
      );
      refused(
        tcpSelection('https://k:8131', { ...tlsFiles, clientKey: junk }),
        `${TCP}.tlsConfig.clientKey`,
        /is not a PEM private key/,
      );
      refused(
        tcpSelection('https://k:8131', { ...tlsFiles, clientKey: pki.files.agentKey }),
        `${TCP}.tlsConfig.clientKey`,
        /is not the key of the certificate in/,
      );
    });
  });
});
