// The README's promise: `npm start` runs a server and an agent and prints a curl command that
// works as printed.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../support/wait.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const run = promisify(execFile);

describe('npm start (quickstart)', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'knp-quickstart-'));
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'konnectivity-local.js')], {
    cwd,
    env: { ...process.env, KNP_LOCAL_PORTS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  after(async () => {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(cwd, { recursive: true, force: true });
  });

  it('prints a curl command that reaches the demo target through the tunnel', async () => {
    await waitFor('the curl command', () => out.includes('Ctrl-C stops everything'), 30_000);
    const command = /curl (-p[^\n]*\\\n[^\n]*)/.exec(out)?.[1]?.replace(/\\\n\s*/, ' ');
    assert.ok(command, out);
    const args = command.trim().split(/\s+/);
    const { stdout } = await run('curl', ['-sS', '--max-time', '20', ...args], { cwd });
    assert.match(stdout, /^hello from the node network, reached through konnectivity-ts \(GET \/\)/);
  });
});
