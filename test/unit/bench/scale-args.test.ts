// bench:scale's pure parts: its command line, the /proc readings (on this process's real
// /proc/self), quantiles, the swarm's bookkeeping and the server --help reading.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parsePhases, parseScaleArgs, PHASES, ScaleArgsError } from '../../../bench/scale/args.js';
import { fdLimitProblem, parseOpenFileLimit, readOpenFileLimit } from '../../../bench/scale/fd-limit.js';
import { backlogNote } from '../../../bench/scale/kernel-backlog.js';
import { percentile } from '../../../bench/scale/percentile.js';
import {
  parseStatCpuTicks,
  parseVmRssKiB,
  readCpuTicks,
  readRssKiB,
} from '../../../bench/scale/proc-stats.js';
import { flagInHelp } from '../../../bench/scale/server-help.js';
import {
  agentPortOf,
  logMessageOf,
  messagesBetween,
  UNSTRUCTURED,
} from '../../../bench/scale/server-under-test.js';
import { failureReason, splitTargetAddress } from '../../../bench/scale/sim-agent.js';
import { shareOut, totalsDelta, type SwarmTotals } from '../../../bench/scale/swarm.js';
import { TokenReviewCounter } from '../../../bench/scale/token-review-counter.js';
import { GrpcStatusError } from '../../../proto/grpc-status.js';

const BIN = '/checkout/bin/proxy-server.js';

describe('bench:scale command line', () => {
  it('has the defaults of the brief', () => {
    const o = parseScaleArgs([], BIN);
    assert.equal(o.agents, 5000);
    assert.equal(o.workers, 2);
    assert.equal(o.idleSeconds, 60);
    assert.deepEqual([...o.phases], [...PHASES]);
    assert.equal(o.dials, 300);
    assert.equal(o.serverBin, BIN);
    assert.deepEqual(o.serverArgs, []);
    assert.equal(o.reviewLatencyMs, 20);
    assert.equal(o.maxConcurrentTokenReviews, undefined);
    assert.equal(o.timeoutSeconds, 180);
    assert.equal(o.tuneKernel, false);
  });

  it('reads every option, --server-arg repeated in order', () => {
    const o = parseScaleArgs(
      [
        '--agents=1000',
        '--workers',
        '4',
        '--idle-seconds=20',
        '--phases=cold,auth',
        '--dials=50',
        '--server-bin=/old/bin/proxy-server.js',
        '--server-arg=--keepalive-time=1h',
        '--server-arg=-v=2',
        '--review-latency-ms=0',
        '--max-concurrent-token-reviews=8',
        '--timeout-seconds=30',
        '--tune-kernel',
        '--out=/tmp/x.json',
      ],
      BIN,
    );
    assert.equal(o.agents, 1000);
    assert.equal(o.workers, 4);
    assert.equal(o.idleSeconds, 20);
    assert.deepEqual([...o.phases], ['cold', 'auth']);
    assert.equal(o.dials, 50);
    assert.equal(o.serverBin, '/old/bin/proxy-server.js');
    assert.deepEqual(o.serverArgs, ['--keepalive-time=1h', '-v=2']);
    assert.equal(o.reviewLatencyMs, 0);
    assert.equal(o.maxConcurrentTokenReviews, 8);
    assert.equal(o.timeoutSeconds, 30);
    assert.equal(o.tuneKernel, true);
    assert.equal(o.out, '/tmp/x.json');
  });

  for (const [args, message] of [
    [['--agents=0'], /--agents must be an integer >= 1, not "0"/],
    [['--agents=many'], /--agents must be an integer >= 1, not "many"/],
    [['--workers=1.5'], /--workers must be an integer >= 1/],
    [['--idle-seconds=-1'], /--idle-seconds must be a number > 0/],
    [['--timeout-seconds='], /--timeout-seconds must be a number > 0, not ""/],
    [['--review-latency-ms=-5'], /--review-latency-ms must be an integer >= 0/],
    [['--phases=cold,warm'], /unknown phase "warm" \(known: cold, idle, dials, restart, auth\)/],
    [['--phases=,'], /--phases names no phase/],
    [['--agnets=5'], /Unknown option '--agnets'/],
  ] as const) {
    it(`refuses ${args.join(' ')} with an error naming it`, () => {
      assert.throws(
        () => parseScaleArgs([...args], BIN),
        (err: unknown) => {
          assert.ok(err instanceof ScaleArgsError);
          assert.match(err.message, message);
          return true;
        },
      );
    });
  }

  it('reads a phase list with spaces and repeats', () => {
    assert.deepEqual([...parsePhases(' idle , idle,restart ')], ['idle', 'restart']);
  });
});

describe('bench:scale /proc readings', () => {
  it('reads utime + stime of this process from /proc/self/stat', () => {
    const first = parseStatCpuTicks(readFileSync('/proc/self/stat', 'utf8'));
    const second = readCpuTicks(process.pid);
    assert.ok(Number.isInteger(first) && first >= 0);
    assert.ok(second >= first, 'CPU time does not go backwards');
  });

  it('counts stat fields from the last parenthesis, whatever the command name holds', () => {
    const fields = ['S', ...Array.from({ length: 10 }, () => '0'), '123', '45', '0', '0'];
    assert.equal(parseStatCpuTicks(`42 (odd) name (x)) ${fields.join(' ')}`), 168);
    assert.throws(() => parseStatCpuTicks('garbage'), /not a \/proc\/<pid>\/stat line/);
  });

  it('reads VmRSS of this process from /proc/self/status', () => {
    const rss = parseVmRssKiB(readFileSync('/proc/self/status', 'utf8'));
    assert.ok(Number.isInteger(rss) && rss > 0);
    assert.ok(readRssKiB(process.pid) > 0);
    assert.throws(() => parseVmRssKiB('Name: x\n'), /no VmRSS line/);
  });

  it('reads the open-file limit of /proc/self/limits', () => {
    const limit = readOpenFileLimit();
    assert.ok(limit === Infinity || (Number.isInteger(limit) && limit > 0));
    assert.equal(
      parseOpenFileLimit('Max open files            20000                20000                files\n'),
      20000,
    );
    assert.equal(parseOpenFileLimit('Max open files  unlimited  unlimited  files\n'), Infinity);
  });
});

describe('bench:scale limits', () => {
  it('refuses agents whose 2N + 100 descriptors exceed ulimit -n, saying how many fit', () => {
    assert.equal(fdLimitProblem(5000, 20_000), undefined);
    assert.equal(fdLimitProblem(10_000, 20_000), undefined);
    assert.equal(fdLimitProblem(19_800, 20_000), undefined);
    const problem = fdLimitProblem(19_801, 20_000);
    assert.match(problem ?? '', /--agents 19801 needs about 20001 open files .* ulimit -n is 20000/);
    assert.match(problem ?? '', /at most 19800 agents/);
  });

  it('notes a loopback backlog below 10000 only', () => {
    assert.match(backlogNote(1000) ?? '', /netdev_max_backlog is 1000 .*--tune-kernel/);
    assert.equal(backlogNote(16_384), undefined);
  });
});

describe('bench:scale figures', () => {
  it('picks quantiles as bench/scenarios.ts does', () => {
    const samples = Array.from({ length: 300 }, (_, i) => i + 1);
    assert.equal(percentile(samples, 0.5), 151);
    assert.equal(percentile(samples, 0.99), 298);
    assert.equal(percentile(samples, 1), 300);
    assert.equal(percentile([7], 0.99), 7);
    assert.ok(Number.isNaN(percentile([], 0.5)));
    assert.throws(() => percentile(samples, 99), RangeError);
  });

  it('shares agents out evenly, never leaving a worker empty', () => {
    assert.deepEqual(shareOut(5000, 2), [2500, 2500]);
    assert.deepEqual(shareOut(7, 3), [3, 2, 2]);
    assert.deepEqual(shareOut(1, 4), [1]);
  });

  it('subtracts swarm counters, keeping only reasons that grew', () => {
    const a: SwarmTotals = {
      agents: 10,
      connected: 10,
      connects: 10,
      handshakes: 12,
      resumed: 0,
      failures: { ECONNREFUSED: 2 },
      dials: 5,
      dialErrors: 0,
    };
    const b: SwarmTotals = {
      ...a,
      connected: 9,
      connects: 19,
      handshakes: 25,
      resumed: 4,
      failures: { ECONNREFUSED: 2, ECONNRESET: 3 },
    };
    assert.deepEqual(totalsDelta(a, b), {
      agents: 10,
      connected: 9,
      connects: 9,
      handshakes: 13,
      resumed: 4,
      failures: { ECONNRESET: 3 },
      dials: 0,
      dialErrors: 0,
    });
  });

  it('counts TokenReviews and the most in flight at once', async () => {
    const counter = new TokenReviewCounter();
    const answers = await Promise.all([1, 2, 3].map((n) => counter.review(() => n, 5)));
    await counter.review(() => 4, 0);
    assert.deepEqual(answers, [1, 2, 3]);
    assert.equal(counter.total, 4);
    assert.equal(counter.peak, 3);
    assert.equal(counter.inFlight, 0);
    counter.reset();
    assert.equal(counter.total, 0);
    assert.equal(counter.peak, 0);
  });
});

describe('bench:scale simulated agent helpers', () => {
  it('names a failed connect by its cause, code or gRPC status', () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const cancelled = Object.assign(new Error('The pending stream has been canceled', { cause: refused }), {
      code: 'ERR_HTTP2_STREAM_CANCEL',
    });
    assert.equal(failureReason(cancelled), 'ECONNREFUSED');
    assert.equal(failureReason(new GrpcStatusError(16, 'bad token')), 'gRPC 16 UNAUTHENTICATED');
    assert.equal(
      failureReason(new Error('no response headers within 15000ms')),
      'no response headers within 15000ms',
    );
  });

  it('splits dial addresses, IPv6 included, and refuses malformed ones', () => {
    assert.deepEqual(splitTargetAddress('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(splitTargetAddress('[::1]:443'), { host: '::1', port: 443 });
    assert.equal(splitTargetAddress('127.0.0.1'), undefined);
    assert.equal(splitTargetAddress(':80'), undefined);
    assert.equal(splitTargetAddress('host:99999'), undefined);
  });
});

describe('bench:scale server process', () => {
  it('reads the agent port of the start-up line', () => {
    assert.equal(agentPortOf('{"level":30,"msg":"proxy-server started","agentPort":40123}'), 40123);
    assert.equal(agentPortOf('{"msg":"proxy-server started"}'), undefined);
    assert.equal(agentPortOf('proxy-server started'), undefined);
  });

  it('counts log lines by message, escaped quotes included', () => {
    assert.equal(logMessageOf('{"level":30,"agentID":"a","msg":"agent connected"}'), 'agent connected');
    assert.equal(logMessageOf('{"msg":"say \\"hi\\"","x":1}'), 'say "hi"');
    assert.equal(logMessageOf('node:internal/process: Warning'), UNSTRUCTURED);
    const before = new Map([['listening', 4]]);
    const after = new Map([
      ['listening', 4],
      ['agent connected', 1000],
      ['agents connected (summary)', 2],
    ]);
    assert.deepEqual(messagesBetween(before, after), [
      ['agent connected', 1000],
      ['agents connected (summary)', 2],
    ]);
  });

  it("finds a flag's default in --help, in our layout and in Go's pflag layout", () => {
    const ours = [
      '      --max-concurrent-token-reviews int',
      '        ours: TokenReviews in flight at once (default 32)',
      '      --mode string',
      '        frontend protocol (default grpc)',
    ].join('\n');
    assert.deepEqual(flagInHelp(ours, 'max-concurrent-token-reviews'), { present: true, default: '32' });
    const go = '      --keepalive-time duration   Time for gRPC agent server keepalive. (default 1h0m0s)\n';
    assert.deepEqual(flagInHelp(go, 'keepalive-time'), { present: true, default: '1h0m0s' });
    assert.deepEqual(
      flagInHelp('      --max-concurrent-token-reviews int\n        limit\n', 'max-concurrent-token-reviews'),
      {
        present: true,
      },
    );
    assert.deepEqual(flagInHelp(ours, 'max-concurrent'), { present: false });
  });
});
