// Throwaway certificates: a CA and leaf certificates signed by it (EC P-256), for `npm start`
// and the tests. Never for production: keys are written unencrypted.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from 'selfsigned';

export interface KeyPair {
  cert: string;
  key: string;
}

export interface Pki {
  ca: KeyPair;
  server: KeyPair;
  client: KeyPair;
  agent: KeyPair;
}

const YEAR_MS = 365 * 24 * 3600 * 1000;

export async function createCa(name: string): Promise<KeyPair> {
  const r = await generate([{ name: 'commonName', value: name }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + YEAR_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: r.cert, key: r.private };
}

export async function issue(
  ca: KeyPair,
  commonName: string,
  usage: 'server' | 'client' | 'both',
  lifetimeMs = YEAR_MS,
): Promise<KeyPair> {
  const r = await generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate: new Date(Date.now() + lifetimeMs),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true },
      { name: 'extKeyUsage', serverAuth: usage !== 'client', clientAuth: usage !== 'server' },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
        ],
      },
    ],
  });
  return { cert: r.cert, key: r.private };
}

export async function createPki(): Promise<Pki> {
  const ca = await createCa('konnectivity-ts throwaway CA');
  const [server, client, agent] = await Promise.all([
    issue(ca, 'konnectivity-server', 'server'),
    issue(ca, 'kube-apiserver', 'client'),
    issue(ca, 'konnectivity-agent', 'client'),
  ]);
  return { ca, server, client, agent };
}

export interface PkiFiles {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  agentCert: string;
  agentKey: string;
}

export function writePki(pki: Pki, dir: string): PkiFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const files: PkiFiles = {
    dir,
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server-key.pem'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client-key.pem'),
    agentCert: join(dir, 'agent.pem'),
    agentKey: join(dir, 'agent-key.pem'),
  };
  const w = (path: string, text: string) => {
    writeFileSync(path, text, { mode: 0o600 });
  };
  w(files.ca, pki.ca.cert);
  w(files.serverCert, pki.server.cert);
  w(files.serverKey, pki.server.key);
  w(files.clientCert, pki.client.cert);
  w(files.clientKey, pki.client.key);
  w(files.agentCert, pki.agent.cert);
  w(files.agentKey, pki.agent.key);
  return files;
}
