// `npm run bench:scale` end to end, small: 20 simulated agents against the real server binary,
// every phase (token auth included). The figures are not judged, only that every row is there
// with numbers, that every agent connected in each connect phase, and that the restarted
// server's TokenReviews stay under --max-concurrent-token-reviews, one per agent.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ScaleResult } from '../../bench/scale/scale-result.js';
import { waitFor } from '../support/wait.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const AGENTS = 20;

/** The table rows the run must print, each with a number in its figure. */
const ROWS = [
  'agents connected from cold',
  'server CPU for the cold connect',
  'server RSS before agents / with 20 agents',
  'server RSS per agent',
  'server idle CPU over 1 s',
  'sequential dials p50 / p99, 20 agents',
  'sequential dials p50 / p99, 1 agent (own server, in turns with the 20-agent dials',
  'during those dials',
  'sequential dials p50 / p99, 1 agent (own server, before any agents connect)',
  'kill -9 and restart: all agents back',
  'kill -9 and restart: server CPU until all back',
  'kill -9 and restart: server log lines',
  'restart with token auth: all agents back',
  'restart with token auth: server CPU until all back',
  'restart with token auth: TokenReviews',
  'restart with token auth: peak concurrent TokenReviews',
];

describe('npm run bench:scale', () => {
  const dir = mkdtempSync(join(tmpdir(), 'knp-bench-scale-'));
  const out = join(dir, 'scale.json');
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'dist', 'bench', 'scale', 'main.js'),
      `--agents=${AGENTS}`,
      '--idle-seconds=1',
      '--dials=100',
      '--timeout-seconds=60',
      '--max-concurrent-token-reviews=2',
      `--out=${out}`,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  let exitCode: number | null | undefined;
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.once('exit', (code) => (exitCode = code));
  after(async () => {
    // SIGTERM: the bench kills its server and workers itself on the way out.
    if (exitCode === undefined) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints every row with numbers, all 20 agents connected each time', async () => {
    await waitFor('bench:scale to finish', () => exitCode !== undefined, 240_000, 100);
    assert.equal(exitCode, 0, `${stdout}\n${stderr}`);
    for (const row of ROWS) {
      const line = stdout.split('\n').find((l) => l.startsWith(`| ${row}`));
      assert.ok(line, `row "${row}" missing from:\n${stdout}`);
      const figure = line.split(' | ')[1] ?? '';
      assert.match(figure, /\d/, `row "${row}" has no number: ${line}`);
    }
    const result = JSON.parse(readFileSync(out, 'utf8')) as ScaleResult;
    assert.deepEqual(result.errors, []);
    for (const [phase, wait] of [
      ['cold', result.cold],
      ['restart', result.restart],
      ['auth', result.auth],
    ] as const) {
      assert.ok(wait, `${phase} measured`);
      assert.equal(wait.connected, AGENTS, `${phase}: ${JSON.stringify(wait)}`);
      assert.equal(wait.wanted, AGENTS);
      assert.equal(typeof wait.seconds, 'number', `${phase} finished`);
    }
    // The restarted server reviews each agent's token once, never more than 2 at a time.
    const reviews = result.auth?.reviews ?? 0;
    assert.ok(reviews >= 1 && reviews <= AGENTS, `${String(reviews)} reviews for ${String(AGENTS)} agents`);
    assert.ok((result.auth?.peakConcurrentReviews ?? 0) >= 1);
    assert.ok(
      (result.auth?.peakConcurrentReviews ?? 0) <= 2,
      `peak ${String(result.auth?.peakConcurrentReviews)}`,
    );
    // A 1 s window is one slice, and the slice is the window (within a clock tick or two: 1% each).
    assert.equal(result.idle?.slicePercents.length, 1);
    assert.ok(
      Math.abs((result.idle.slicePercents[0] ?? NaN) - result.idle.cpuPercent) < 2.5,
      JSON.stringify(result.idle),
    );
    assert.equal(result.dials?.withAgents?.done, 100);
    assert.equal(result.dials.withAgents.oneAgentAlongside.done, 100);
    assert.equal(result.dials.withAgents.reconnects, 0, 'no agent reconnected during the dials');
    assert.equal(result.dials.oneAgent?.done, 100);
    assert.doesNotMatch(readFileSync(out, 'utf8'), /samplesMs/, 'the JSON keeps percentiles, not samples');
  });
});
