// A log reader that stops reading (a full stdout pipe) stalls no connection: the server writes
// its log lines from a background thread. Hundreds of dials, each with its audit line, go through
// while nobody reads the server's stdout; once the reader comes back, every line arrives.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, type Cluster } from '../support/cluster.js';
import { askLabId, LabTarget } from '../support/targets.js';
import { waitFor } from '../support/wait.js';

/** Audit lines are ~300 bytes: this many fill a 64 KiB pipe and the reader's buffer twice over. */
const DIALS = 1000;

describe('logs and a stalled log reader', () => {
  let cluster: Cluster;
  let target: LabTarget;

  before(async () => {
    target = await new LabTarget('lab').start();
    cluster = await startCluster('http-connect', 'uds');
  });
  after(async () => {
    await cluster.stop();
    await target.stop();
  });

  // With logs written on the event loop, the first dial after the pipe fills hangs for good.
  it('serves dials while stdout is not read, and loses no line', { timeout: 60_000 }, async () => {
    const stdout = cluster.server.proc.child.stdout;
    assert.ok(stdout, 'the server has a stdout pipe');
    const auditLines = () => cluster.server.proc.lines.filter((l) => l.audit === 'dial').length;
    const before = auditLines();
    stdout.pause();
    try {
      for (let i = 0; i < DIALS; i++) assert.equal(await askLabId(cluster.frontend, target.address), 'lab\n');
    } finally {
      stdout.resume();
    }
    await waitFor(`${DIALS} more audit lines`, () => auditLines() >= before + DIALS);
  });
});
