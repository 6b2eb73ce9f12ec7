// `npm run bench:scale`: thousands of simulated agents (worker threads, real mTLS Connect
// streams) against one proxy-server child process; the server's CPU and memory read from
// /proc. Prints a table and writes bench/results/scale-latest.json (see --help).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testPki } from '../../test/support/pki.js';
import { startTarget } from '../helpers.js';
import { parseScaleArgs, ScaleArgsError, USAGE, type ScaleOptions } from './args.js';
import { Cleanup } from './cleanup.js';
import { fdLimitProblem, readOpenFileLimit } from './fd-limit.js';
import { backlogNote, raiseNetdevBacklog, readNetdevBacklog, TUNED_BACKLOG } from './kernel-backlog.js';
import { ScalePhases, type BenchEnv } from './phases.js';
import { clockTicksPerSecond } from './proc-stats.js';
import { scaleTable, type ScaleResult } from './scale-result.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

function say(line: string): void {
  process.stderr.write(`[bench:scale] ${line}\n`);
}

/** Checks that need no process started: the error text, or undefined. */
function refusal(o: ScaleOptions): string | undefined {
  if (!existsSync(o.serverBin)) return `--server-bin ${o.serverBin}: no such file`;
  return fdLimitProblem(o.agents, readOpenFileLimit());
}

/** Raises the loopback backlog when asked; says so when it is low and not raised. */
function prepareKernel(o: ScaleOptions, cleanup: Cleanup): { backlog: number | undefined; tuned: boolean } {
  const backlog = readNetdevBacklog();
  if (backlog === undefined) return { backlog, tuned: false };
  if (o.tuneKernel && backlog < TUNED_BACKLOG) {
    cleanup.add('restore net.core.netdev_max_backlog', raiseNetdevBacklog(backlog));
    say(`net.core.netdev_max_backlog raised from ${backlog} to ${TUNED_BACKLOG} until exit (--tune-kernel)`);
    return { backlog, tuned: true };
  }
  const note = backlogNote(backlog);
  if (note) say(note);
  return { backlog, tuned: false };
}

async function run(o: ScaleOptions, cleanup: Cleanup): Promise<ScaleResult> {
  const kernel = prepareKernel(o, cleanup);
  const pki = await testPki();
  cleanup.add('remove the certificates', () => {
    pki.cleanup();
  });
  const workDir = mkdtempSync(join(tmpdir(), 'knp-scale-'));
  cleanup.add('remove the work directory', () => {
    rmSync(workDir, { recursive: true, force: true });
  });
  const target = await startTarget();
  cleanup.add('stop the echo target', () => {
    target.stop();
  });
  const env: BenchEnv = {
    workDir,
    files: {
      ca: pki.files.ca,
      serverCert: pki.files.serverCert,
      serverKey: pki.files.serverKey,
      agentCert: pki.files.agentCert,
      agentKey: pki.files.agentKey,
    },
    agentTls: { ca: pki.pki.ca.cert, cert: pki.pki.agent.cert, key: pki.pki.agent.key },
    targetAddress: target.address,
    ticksPerSecond: clockTicksPerSecond(),
    cleanup,
  };
  const result: ScaleResult = {
    when: new Date().toISOString(),
    node: process.version,
    agents: o.agents,
    workers: Math.min(o.workers, o.agents),
    serverBin: o.serverBin,
    serverArgs: o.serverArgs,
    idleSeconds: o.idleSeconds,
    dialsPerPhase: o.dials,
    reviewLatencyMs: o.reviewLatencyMs,
    netdevMaxBacklog: kernel.backlog,
    kernelTuned: kernel.tuned,
    errors: [],
  };
  const phases = new ScalePhases(o, env);
  // A phase that throws is reported and the run goes on; later phases that needed it fail fast.
  const phase = async <T>(name: string, body: () => Promise<T>): Promise<T | undefined> => {
    say(`${name}...`);
    try {
      return await body();
    } catch (err) {
      const text = `${name}: ${(err as Error).message}`;
      result.errors.push(text);
      say(`FAILED ${text}`);
      return undefined;
    }
  };

  if (o.phases.has('dials')) {
    const oneAgent = await phase('sequential dials with 1 agent (own server)', () => phases.oneAgentDials());
    if (oneAgent) result.dials = { oneAgent };
  }
  const cold = await phase(`${o.agents} agents connecting from cold`, () =>
    phases.coldConnect(o.phases.has('auth')),
  );
  if (cold && o.phases.has('cold')) {
    result.cold = cold.cold;
    result.memory = {
      beforeKiB: cold.beforeKiB,
      afterConnectKiB: cold.afterKiB,
      kibPerAgent: (cold.afterKiB - cold.beforeKiB) / o.agents,
    };
  }
  if (o.phases.has('idle')) {
    const idle = await phase(`idle for ${o.idleSeconds} s`, () => phases.idle());
    if (idle) {
      const { rssKiB, ...figures } = idle;
      result.idle = figures;
      if (result.memory) {
        result.memory.afterIdleKiB = rssKiB;
        result.memory.kibPerAgent = (rssKiB - result.memory.beforeKiB) / o.agents;
      }
    }
  }
  if (o.phases.has('dials')) {
    const withAgents = await phase(`sequential dials with ${o.agents} agents`, () =>
      phases.dialsWithAgents(),
    );
    if (withAgents) result.dials = { ...result.dials, withAgents };
  }
  if (o.phases.has('restart')) {
    result.restart = await phase('kill -9 and restart', () => phases.restart());
  }
  if (o.phases.has('auth')) {
    result.auth = await phase('kill -9 and restart with token auth', () => phases.authRestart());
  }
  return result;
}

async function main(argv: string[]): Promise<number> {
  let options: ScaleOptions;
  try {
    options = parseScaleArgs(argv, join(ROOT, 'bin', 'proxy-server.js'));
  } catch (err) {
    if (!(err instanceof ScaleArgsError)) throw err;
    process.stderr.write(`bench:scale: ${err.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  options.serverBin = resolve(options.serverBin);
  const refused = refusal(options);
  if (refused) {
    process.stderr.write(`bench:scale: ${refused}\n`);
    return 2;
  }
  const cleanup = new Cleanup();
  cleanup.installHandlers();
  try {
    const result = await run(options, cleanup);
    process.stdout.write(`${scaleTable(result)}\n`);
    for (const e of result.errors) process.stdout.write(`error: ${e}\n`);
    mkdirSync(dirname(resolve(options.out)), { recursive: true });
    // Percentiles, not the thousands of samples they came from.
    const withoutSamples = (key: string, value: unknown) => (key === 'samplesMs' ? undefined : value);
    writeFileSync(options.out, JSON.stringify(result, withoutSamples, 2) + '\n');
    say(`wrote ${options.out}`);
    return result.errors.length === 0 ? 0 : 1;
  } finally {
    await cleanup.run();
  }
}

process.exit(await main(process.argv.slice(2)));
