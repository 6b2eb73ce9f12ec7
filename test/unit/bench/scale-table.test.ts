// The bench:scale table's idle row: the window's mean, and its slices so that a one-off full
// collection shows apart from the steady state.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { scaleTable, type IdleFigures, type ScaleResult } from '../../../bench/scale/scale-result.js';

function withIdle(idle: IdleFigures): ScaleResult {
  return {
    when: '2026-12-02T00:00:00Z',
    node: 'v20',
    agents: 10_000,
    workers: 2,
    serverBin: 'bin/proxy-server.js',
    serverArgs: [],
    idleSeconds: idle.seconds,
    dialsPerPhase: 0,
    reviewLatencyMs: 20,
    netdevMaxBacklog: undefined,
    kernelTuned: false,
    idle,
    errors: [],
  };
}

/** The idle row of the table for a window with these figures. */
function idleRow(
  figures: Pick<IdleFigures, 'seconds' | 'cpuPercent' | 'slicePercents' | 'reconnects'>,
): string {
  const table = scaleTable(
    withIdle({
      ...figures,
      cpuSeconds: (figures.cpuPercent * figures.seconds) / 100,
      logLines: 0,
      logMessages: [],
    }),
  );
  const row = table.split('\n').find((line) => line.includes('server idle CPU'));
  assert.ok(row, table);
  return row;
}

describe('scaleTable idle row', () => {
  it('gives the median and the range of the slices beside the mean', () => {
    const row = idleRow({
      seconds: 60,
      cpuPercent: 1.95,
      slicePercents: [0.9, 1.1, 6.2, 0.8, 1.0, 1.7],
      reconnects: 0,
    });
    assert.match(row, /1\.95% of one core; 6 slices of 10 s: median 1\.10%, 0\.80-6\.20% \(0 reconnects/);
  });

  it('says nothing of slices for a window of one', () => {
    const row = idleRow({ seconds: 1, cpuPercent: 1, slicePercents: [1], reconnects: 2 });
    assert.match(row, /\| 1\.00% of one core \(2 reconnects/);
  });
});
