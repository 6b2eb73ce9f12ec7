// TLS on the server's listeners: minimum version, cipher suites, and certificates reloaded
// from disk without a restart and without dropping open connections. Real processes, real TLS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { issue } from '../../quickstart/pki.js';
import { dial } from '../../ccm-integration/dialer/index.js';
import { testPki, type TestPki } from '../support/pki.js';
import {
  agentArgs,
  spawnBin,
  startServer,
  waitReady,
  type Proc,
  type ServerInfo,
} from '../support/processes.js';
import { LabTarget, readAll } from '../support/targets.js';
import { waitFor } from '../support/wait.js';

interface Handshake {
  ok: boolean;
  error?: string;
  protocol?: string | null;
  cipher?: string;
  fingerprint?: string;
}

/** One TLS handshake with a client certificate; reports what was negotiated. */
function handshake(port: number, pki: TestPki, options: tls.ConnectionOptions = {}): Promise<Handshake> {
  return new Promise((resolve) => {
    const f = pki.pki;
    const s = tls.connect({
      host: '127.0.0.1',
      port,
      ca: f.ca.cert,
      cert: f.client.cert,
      key: f.client.key,
      ALPNProtocols: ['h2', 'http/1.1'],
      ...options,
    });
    s.once('secureConnect', () => {
      resolve({
        ok: true,
        protocol: s.getProtocol(),
        cipher: s.getCipher().standardName,
        fingerprint: s.getPeerCertificate().fingerprint256,
      });
      s.destroy();
    });
    s.once('error', (err: Error) => {
      resolve({ ok: false, error: err.message });
      s.destroy();
    });
  });
}

const clientTls = () => {
  const p = cachedPki;
  if (!p) throw new Error('pki not ready');
  return {
    ca: Buffer.from(p.pki.ca.cert),
    cert: Buffer.from(p.pki.client.cert),
    key: Buffer.from(p.pki.client.key),
  };
};
let cachedPki: TestPki | undefined;

describe('TLS hardening', () => {
  let pki: TestPki;
  let dir: string;
  let server: ServerInfo;
  let agent: Proc;
  let target: LabTarget;

  before(async () => {
    pki = await testPki();
    cachedPki = pki;
    target = await new LabTarget('lab').start();
    dir = join(pki.dir, `rotating-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'cluster.pem'), pki.pki.server.cert);
    writeFileSync(join(dir, 'cluster-key.pem'), pki.pki.server.key);
    const f = pki.files;
    server = await startServer([
      '--mode=http-connect',
      '--server-port=0',
      '--server-bind-address=127.0.0.1',
      `--server-cert=${join(dir, 'cluster.pem')}`,
      `--server-key=${join(dir, 'cluster-key.pem')}`,
      `--server-ca-cert=${f.ca}`,
      `--cluster-cert=${join(dir, 'cluster.pem')}`,
      `--cluster-key=${join(dir, 'cluster-key.pem')}`,
      `--cluster-ca-cert=${f.ca}`,
      '--tls-min-version=VersionTLS13',
      '--cert-reload-interval=100ms',
    ]);
    agent = spawnBin('proxy-agent', agentArgs(f, server.agentPort));
    await waitReady(server);
  });
  after(async () => {
    await Promise.all([agent.kill(), server.proc.kill()]);
    await target.stop();
  });

  it('refuses TLS 1.2 clients on the agent and frontend ports with --tls-min-version=VersionTLS13', async () => {
    for (const port of [server.agentPort, server.frontendPort]) {
      const old = await handshake(port, pki, { maxVersion: 'TLSv1.2' });
      assert.equal(old.ok, false, `port ${port}`);
      const current = await handshake(port, pki);
      assert.equal(current.ok, true, current.error);
      assert.equal(current.protocol, 'TLSv1.3');
    }
  });

  it('serves a certificate swapped on disk to the next handshake, keeping open connections', async () => {
    const tunnel = await dial(
      {
        protocol: 'http-connect',
        host: '127.0.0.1',
        port: server.frontendPort,
        tls: clientTls(),
      },
      target.address,
    );
    const before = await handshake(server.agentPort, pki);
    const next = await issue(pki.pki.ca, 'rotated-server', 'server');
    // Write beside and rename, as kubelet's atomic writer does: never a half-written file.
    writeFileSync(join(dir, 'new-key.pem'), next.key);
    writeFileSync(join(dir, 'new.pem'), next.cert);
    renameSync(join(dir, 'new-key.pem'), join(dir, 'cluster-key.pem'));
    renameSync(join(dir, 'new.pem'), join(dir, 'cluster.pem'));
    await waitFor(
      'both listeners reloaded',
      () => server.proc.lines.filter((l) => l.msg === 'TLS certificate reloaded').length >= 2 || undefined,
    );
    for (const port of [server.agentPort, server.frontendPort]) {
      const after = await handshake(port, pki);
      assert.equal(after.ok, true, after.error);
      assert.notEqual(after.fingerprint, before.fingerprint, `port ${port} still serves the old certificate`);
      assert.equal(after.fingerprint, new X509Certificate(next.cert).fingerprint256);
    }
    // The tunnel opened before the swap and the agent's stream both still work.
    const back = readAll(tunnel);
    tunnel.end('id\n');
    assert.equal((await back).toString(), 'lab\n');
    assert.equal(agent.find('lost connection to proxy-server'), undefined);
    const fresh = await dial(
      {
        protocol: 'http-connect',
        host: '127.0.0.1',
        port: server.frontendPort,
        tls: clientTls(),
      },
      target.address,
    );
    const answer = readAll(fresh);
    fresh.end('id\n');
    assert.equal((await answer).toString(), 'lab\n');
  });

  it('restricts TLS 1.2 to the listed cipher suites (Go names) and keeps TLS 1.3', async () => {
    const f = pki.files;
    const s = await startServer([
      '--mode=grpc',
      `--uds-name=${join(dir, 'ciphers.sock')}`,
      `--cluster-cert=${f.serverCert}`,
      `--cluster-key=${f.serverKey}`,
      '--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
    ]);
    try {
      const listed = await handshake(s.agentPort, pki, { maxVersion: 'TLSv1.2' });
      assert.equal(listed.ok, true, listed.error);
      assert.equal(listed.cipher, 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
      const unlisted = await handshake(s.agentPort, pki, {
        maxVersion: 'TLSv1.2',
        ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384',
      });
      assert.equal(unlisted.ok, false);
      const v13 = await handshake(s.agentPort, pki);
      assert.equal(v13.protocol, 'TLSv1.3');
    } finally {
      await s.proc.kill();
    }
  });

  it('fails start-up on an unknown cipher suite or TLS version, naming it', async () => {
    const f = pki.files;
    for (const [flag, name] of [
      ['--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_NOT_A_SUITE', 'TLS_NOT_A_SUITE'],
      ['--tls-min-version=VersionTLS14', 'VersionTLS14'],
    ] as const) {
      const p = spawnBin('proxy-server', [
        `--uds-name=${join(dir, 'bad.sock')}`,
        `--cluster-cert=${f.serverCert}`,
        `--cluster-key=${f.serverKey}`,
        flag,
      ]);
      assert.equal(await p.exited, 2);
      assert.match(p.output(), new RegExp(name));
    }
  });
});
