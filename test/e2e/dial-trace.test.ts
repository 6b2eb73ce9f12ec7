// KNP_TRACE_DIALS: with it set, server and agent each write one "dial trace" line per dial,
// every step stamped, in the order the dial took them, for both frontends.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dial } from '../../ccm-integration/dialer/index.js';
import { startCluster, type Cluster, type Mode } from '../support/cluster.js';
import type { LogLine, Proc } from '../support/processes.js';
import { LabTarget } from '../support/targets.js';
import { waitFor } from '../support/wait.js';
import { AGENT_STEPS, SERVER_STEPS } from '../../common/dial-trace.js';

/** Dial, one-byte echo, close: the bench's sequential dial. */
async function echoOnce(cluster: Cluster, address: string): Promise<void> {
  const s = await dial(cluster.frontend, address);
  const back = new Promise<void>((resolve, reject) => {
    s.once('data', () => resolve());
    s.once('error', reject);
  });
  s.write('echo\nx');
  await back;
  s.destroy();
}

function traceLine(proc: Proc | undefined): Promise<LogLine> {
  return waitFor('a dial trace line', () => proc?.lines.find((l) => l.msg === 'dial trace'));
}

/** The steps of a line, by time; every one a decimal hrtime in nanoseconds. */
function stepsInOrder(line: LogLine): string[] {
  const steps = line.steps as Record<string, string>;
  for (const [name, at] of Object.entries(steps)) assert.match(at, /^\d+$/, `step ${name}`);
  return Object.entries(steps)
    .sort(([, a], [, b]) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0))
    .map(([name]) => name);
}

for (const mode of ['grpc', 'http-connect'] as const satisfies readonly Mode[]) {
  describe(`dial trace, ${mode} frontend`, () => {
    let target: LabTarget;
    let cluster: Cluster;

    before(async () => {
      target = await new LabTarget('trace').start();
      const before = process.env.KNP_TRACE_DIALS;
      process.env.KNP_TRACE_DIALS = '1';
      try {
        cluster = await startCluster(mode, 'uds');
      } finally {
        if (before === undefined) delete process.env.KNP_TRACE_DIALS;
        else process.env.KNP_TRACE_DIALS = before;
      }
    });
    after(async () => {
      await cluster.stop();
      await target.stop();
    });

    it('writes one line per process with every step of the dial, in order, joined by the random', async () => {
      await echoOnce(cluster, target.address);
      const server = await traceLine(cluster.server.proc);
      const agent = await traceLine(cluster.agent);
      assert.equal(server.process, 'server');
      assert.equal(agent.process, 'agent');
      assert.equal(server.frontend, mode);
      assert.equal(server.outcome, 'ok');
      assert.match(String(server.random), /^\d+$/);
      assert.equal(agent.random, server.random, 'the same dial on both sides');

      const serverExpected = SERVER_STEPS.filter((s) => mode === 'grpc' || s !== 'streamOpened');
      const serverSteps = stepsInOrder(server);
      // The flush of DIAL_REQ is reported by the HTTP/2 or WebSocket stream whenever it
      // completes: after the write, its place among the later steps is not fixed.
      const flushed = serverSteps.indexOf('dialReqFlushed');
      assert.ok(flushed > serverSteps.indexOf('dialReqSent'), 'DIAL_REQ flushed after it was written');
      assert.deepEqual(
        serverSteps.filter((s) => s !== 'dialReqFlushed'),
        serverExpected.filter((s) => s !== 'dialReqFlushed'),
      );
      assert.deepEqual(stepsInOrder(agent), [...AGENT_STEPS]);

      // One clock for both processes: the agent read the DIAL_REQ after the server wrote it.
      const s = server.steps as Record<string, string>;
      const a = agent.steps as Record<string, string>;
      assert.ok(BigInt(a.dialReqReceived ?? 0) > BigInt(s.dialReqSent ?? 0));
      assert.ok(BigInt(s.dialRspReceived ?? 0) > BigInt(a.dialRspSent ?? 0));
    });
  });
}

describe('dial trace, off', () => {
  it('writes no trace line when KNP_TRACE_DIALS is unset', async () => {
    const target = await new LabTarget('untraced').start();
    const before = process.env.KNP_TRACE_DIALS;
    delete process.env.KNP_TRACE_DIALS;
    const cluster = await startCluster('http-connect', 'uds');
    if (before !== undefined) process.env.KNP_TRACE_DIALS = before;
    try {
      await echoOnce(cluster, target.address);
      await waitFor('the audit line of the dial', () =>
        cluster.server.proc.lines.find((l) => l.audit === 'dial' && l.result === 'ok'),
      );
      assert.equal(cluster.server.proc.lines.filter((l) => l.msg === 'dial trace').length, 0);
      assert.equal((cluster.agent?.lines ?? []).filter((l) => l.msg === 'dial trace').length, 0);
    } finally {
      await cluster.stop();
      await target.stop();
    }
  });
});
