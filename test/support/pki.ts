// Test certificates, generated once per test process into a temporary directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCa, createPki, issue, writePki, type Pki, type PkiFiles } from '../../quickstart/pki.js';
import { writeFileSync } from 'node:fs';

export interface TestPki {
  pki: Pki;
  files: PkiFiles;
  /** An agent certificate from a CA the server does not trust. */
  rogueAgentCert: string;
  rogueAgentKey: string;
  dir: string;
  cleanup(): void;
}

let cached: Promise<TestPki> | undefined;

export function testPki(): Promise<TestPki> {
  cached ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'knp-test-'));
    const pki = await createPki();
    const files = writePki(pki, join(dir, 'pki'));
    const rogueCa = await createCa('rogue CA');
    const rogue = await issue(rogueCa, 'rogue-agent', 'client');
    const rogueAgentCert = join(dir, 'pki', 'rogue-agent.pem');
    const rogueAgentKey = join(dir, 'pki', 'rogue-agent-key.pem');
    writeFileSync(rogueAgentCert, rogue.cert);
    writeFileSync(rogueAgentKey, rogue.key);
    return {
      pki,
      files,
      rogueAgentCert,
      rogueAgentKey,
      dir,
      cleanup: () => {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  })();
  return cached;
}
