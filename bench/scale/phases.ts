// The phases of a bench:scale run, in the order main.ts calls them: dials through a server with
// one agent; then one server taking N agents from cold, idling, serving dials, killed -9 and
// restarted on the same agent port, and restarted again with token authentication on.
import { join } from 'node:path';
import type { FrontendAddress } from '../../ccm-integration/dialer/index.js';
import type { ScaleOptions } from './args.js';
import type { Cleanup } from './cleanup.js';
import { CpuMeter, readRssKiB } from './proc-stats.js';
import {
  IDLE_SLICE_SECONDS,
  serverCpuFigures,
  type AuthFigures,
  type ColdFigures,
  type IdleFigures,
  type RestartFigures,
} from './scale-result.js';
import { mergeDialFigures, type DialFigures, type DialsBesideAgents } from './sequential-dials.js';
import { runDialClient, startRealAgent, type RealAgent } from './dial-processes.js';
import { flagInHelp, serverHelp } from './server-help.js';
import { messagesBetween, ServerUnderTest } from './server-under-test.js';
import { epochNow } from './swarm-messages.js';
import { Swarm, totalsDelta, type SwarmConfig } from './swarm.js';
import { startTokenReviewApi, tokenAuthArgs } from './token-review-counter.js';

export interface BenchEnv {
  workDir: string;
  /** Certificate files for the server and the real agent, PEM texts for the simulated ones. */
  files: { ca: string; serverCert: string; serverKey: string; agentCert: string; agentKey: string };
  agentTls: SwarmConfig['tls'];
  /** host:port of the echo target. */
  targetAddress: string;
  ticksPerSecond: number;
  cleanup: Cleanup;
}

/** A pause before a reading, so that it is not the tail of what came just before. */
const SETTLE_MS = 2_000;
const IDLE_SLICE_MS = IDLE_SLICE_SECONDS * 1000;
const HOST = '127.0.0.1';
const LIMIT_FLAG = 'max-concurrent-token-reviews';
/** A restarted server may find its agent port taken by an agent's outgoing socket for a moment. */
const START_ATTEMPTS = 5;
/** Log messages kept in the result, most frequent first. */
const TOP_MESSAGES = 10;
/** The N-agent dial phase runs in this many chunks per server, taken in turns. */
const DIAL_CHUNKS = 6;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * From now until the returned function is called: the server's CPU, agents that connected
 * again, and the server's log lines with their most frequent messages.
 */
function watchWindow(server: ServerUnderTest, swarm: Swarm, ticksPerSecond: number) {
  const before = swarm.totals();
  const lines = server.logLines;
  const messages = new Map(server.messages);
  const cpu = new CpuMeter(server.pid, ticksPerSecond);
  return () => ({
    cpuSeconds: cpu.seconds(),
    reconnects: totalsDelta(before, swarm.totals()).connects,
    logLines: server.logLines - lines,
    logMessages: messagesBetween(messages, server.messages).slice(0, TOP_MESSAGES),
  });
}

export class ScalePhases {
  private server: ServerUnderTest | undefined;
  private swarm: Swarm | undefined;
  private agentPort = 0;
  private readonly uds: string;

  constructor(
    private readonly o: ScaleOptions,
    private readonly env: BenchEnv,
  ) {
    this.uds = join(env.workDir, 'frontend.sock');
  }

  private get timeoutMs(): number {
    return this.o.timeoutSeconds * 1000;
  }

  private serverArgs(uds: string, agentPort: number, extra: string[]): string[] {
    const f = this.env.files;
    return [
      '--mode=grpc',
      `--uds-name=${uds}`,
      `--cluster-cert=${f.serverCert}`,
      `--cluster-key=${f.serverKey}`,
      `--cluster-ca-cert=${f.ca}`,
      `--agent-port=${agentPort}`,
      `--agent-bind-address=${HOST}`,
      '--health-port=0',
      `--health-bind-address=${HOST}`,
      '--admin-port=0',
      '--proxy-strategies=destHost,default',
      '--server-count=1',
      ...extra,
      ...this.o.serverArgs,
    ];
  }

  private async startServer(
    uds: string,
    agentPort: number,
    extra: string[],
  ): Promise<{ server: ServerUnderTest; agentPort: number }> {
    for (let attempt = 1; ; attempt++) {
      try {
        const started = await ServerUnderTest.start({
          bin: this.o.serverBin,
          args: this.serverArgs(uds, agentPort, extra),
          timeoutMs: this.timeoutMs,
        });
        this.env.cleanup.add('kill the server', () => started.server.kill());
        return started;
      } catch (err) {
        if (attempt >= START_ATTEMPTS || !/EADDRINUSE/.test((err as Error).message)) throw err;
        await sleep(200);
      }
    }
  }

  private startSwarm(agents: number, workers: number, port: number, tokens: boolean): Swarm {
    const swarm = Swarm.start({ agents, workers, host: HOST, port, tls: this.env.agentTls, tokens });
    this.env.cleanup.add('stop the swarm', () => swarm.stop());
    return swarm;
  }

  private running(): { server: ServerUnderTest; swarm: Swarm } {
    if (!this.server || !this.swarm) throw new Error('no server with agents: the cold phase did not run');
    return { server: this.server, swarm: this.swarm };
  }

  private serverGone(server: ServerUnderTest): () => string | undefined {
    return () => (server.running ? undefined : `the server exited:\n${server.recentOutput}`);
  }

  private frontend(uds: string): FrontendAddress {
    return { protocol: 'grpc', uds };
  }

  /** Sequential dials through a server of its own with a single (real) agent: the baseline. */
  async oneAgentDials(): Promise<DialFigures> {
    const uds = join(this.env.workDir, 'one-agent.sock');
    const { server, agentPort } = await this.startServer(uds, 0, []);
    try {
      return await this.dialsThroughRealAgent(uds, agentPort);
    } finally {
      await server.kill();
    }
  }

  /** Starts the server, reads its idle RSS, then lets all N agents connect at once. */
  async coldConnect(tokens: boolean): Promise<{ cold: ColdFigures; beforeKiB: number; afterKiB: number }> {
    const { server, agentPort } = await this.startServer(this.uds, 0, []);
    this.server = server;
    this.agentPort = agentPort;
    await sleep(SETTLE_MS);
    const beforeKiB = readRssKiB(server.pid);
    const cpu = new CpuMeter(server.pid, this.env.ticksPerSecond);
    const loadCpu = new CpuMeter(process.pid, this.env.ticksPerSecond);
    const since = epochNow();
    const swarm = this.startSwarm(this.o.agents, this.o.workers, agentPort, tokens);
    this.swarm = swarm;
    const wait = await swarm.waitAllConnected(since, this.timeoutMs, this.serverGone(server));
    const serverCpuSeconds = cpu.seconds();
    const loadCpuSeconds = loadCpu.seconds();
    const afterKiB = readRssKiB(server.pid);
    const totals = swarm.totals();
    return {
      cold: {
        ...wait,
        ...serverCpuFigures(serverCpuSeconds, totals.connects),
        swarm: totals,
        loadCpuSeconds,
      },
      beforeKiB,
      afterKiB,
    };
  }

  /** Server CPU over the idle window with every agent connected and no dials. */
  async idle(): Promise<IdleFigures & { rssKiB: number }> {
    const { server, swarm } = this.running();
    await sleep(SETTLE_MS);
    const window = watchWindow(server, swarm, this.env.ticksPerSecond);
    const t0 = performance.now();
    const slicePercents: number[] = [];
    // In slices, so that a one-off (V8's memory reducer: two full collections of the heap the
    // connects left, about 75 s after them) shows apart from the steady state.
    for (let left = this.o.idleSeconds * 1000; left > 0; left -= IDLE_SLICE_MS) {
      const slice = new CpuMeter(server.pid, this.env.ticksPerSecond);
      const s0 = performance.now();
      await sleep(Math.min(left, IDLE_SLICE_MS));
      slicePercents.push((slice.seconds() / ((performance.now() - s0) / 1000)) * 100);
    }
    const { cpuSeconds, ...what } = window();
    const seconds = (performance.now() - t0) / 1000;
    return {
      seconds: this.o.idleSeconds,
      cpuSeconds,
      cpuPercent: (cpuSeconds / seconds) * 100,
      slicePercents,
      ...what,
      rssKiB: readRssKiB(server.pid),
    };
  }

  /**
   * Sequential dials with all N agents connected, through the same kind of real agent as the
   * baseline, and a second baseline beside them: a server of its own with one agent, dialled
   * in chunks taken in turns with the N-agent ones. Both then see the same machine: the load
   * generator (its N connections and its own GC) and whatever else the box does, so what
   * differs between the two figures is the server's N agents. The chunks alternate which
   * server goes first.
   */
  async dialsWithAgents(): Promise<DialsBesideAgents> {
    const { server, swarm } = this.running();
    const uds = join(this.env.workDir, 'one-agent-alongside.sock');
    const { server: baseline, agentPort: baselinePort } = await this.startServer(uds, 0, []);
    const agents: RealAgent[] = [];
    try {
      for (const port of [this.agentPort, baselinePort]) agents.push(await this.startDialAgent(port));
      const window = watchWindow(server, swarm, this.env.ticksPerSecond);
      const loadCpu = new CpuMeter(process.pid, this.env.ticksPerSecond);
      const t0 = performance.now();
      const deadline = Date.now() + this.timeoutMs;
      const withAgents: DialFigures[] = [];
      const alongside: DialFigures[] = [];
      const chunk = Math.ceil(this.o.dials / DIAL_CHUNKS);
      for (let i = 0, left = this.o.dials; left > 0; i++, left -= chunk) {
        const n = Math.min(chunk, left);
        const runs: [string, DialFigures[]][] = [
          [this.uds, withAgents],
          [uds, alongside],
        ];
        if (i % 2 === 1) runs.reverse();
        for (const [socket, into] of runs) {
          into.push(await runDialClient(socket, this.env.targetAddress, n, deadline));
        }
      }
      const { cpuSeconds, ...what } = window();
      return {
        ...mergeDialFigures(withAgents),
        oneAgentAlongside: mergeDialFigures(alongside),
        ...what,
        seconds: (performance.now() - t0) / 1000,
        serverCpuSeconds: cpuSeconds,
        loadCpuSeconds: loadCpu.seconds(),
      };
    } finally {
      await Promise.all(agents.map((a) => a.stop()));
      await baseline.kill();
    }
  }

  /**
   * The dial row, measured the same way with 1 agent and with N: a real proxy-agent (claiming
   * the target's address, so destHost routes every dial to it and never to a simulated agent)
   * and the client each in a process of their own, so the load generator's own pauses are not
   * in the figure; the server is what differs.
   */
  private async dialsThroughRealAgent(uds: string, agentPort: number): Promise<DialFigures> {
    const agent = await this.startDialAgent(agentPort);
    try {
      return await runDialClient(uds, this.env.targetAddress, this.o.dials, Date.now() + this.timeoutMs);
    } finally {
      await agent.stop();
    }
  }

  /** A real agent on the server at `agentPort`, claiming the target's address; stopped at exit too. */
  private async startDialAgent(agentPort: number): Promise<RealAgent> {
    const [targetHost] = this.env.targetAddress.split(':');
    const agent = await startRealAgent(this.env.files, agentPort, targetHost ?? HOST, this.timeoutMs);
    this.env.cleanup.add('stop a dial agent', () => agent.stop());
    return agent;
  }

  /** kill -9, a new server on the same agent port (with `extra` flags), and the wait for all agents. */
  private async restartWith(extra: string[]): Promise<RestartFigures> {
    const { server: old, swarm } = this.running();
    const before = swarm.totals();
    const loadCpu = new CpuMeter(process.pid, this.env.ticksPerSecond);
    const since = epochNow();
    await old.kill();
    const { server } = await this.startServer(this.uds, this.agentPort, extra);
    this.server = server;
    const serverStartSeconds = (epochNow() - since) / 1000;
    const cpu = new CpuMeter(server.pid, this.env.ticksPerSecond);
    const wait = await swarm.waitAllConnected(since, this.timeoutMs, this.serverGone(server));
    const serverCpuSeconds = cpu.seconds();
    const loadCpuSeconds = loadCpu.seconds();
    const delta = totalsDelta(before, swarm.totals());
    // Log lines of the last connects may still be on their way through the server's pipe.
    await sleep(SETTLE_MS);
    return {
      ...wait,
      serverStartSeconds,
      logLines: server.logLines,
      logMessages: messagesBetween(new Map(), server.messages).slice(0, TOP_MESSAGES),
      ...serverCpuFigures(serverCpuSeconds, delta.connects),
      swarm: delta,
      loadCpuSeconds,
    };
  }

  async restart(): Promise<RestartFigures> {
    return this.restartWith([]);
  }

  /** The restart again, the new server reviewing every agent's token with the fake API. */
  async authRestart(): Promise<AuthFigures> {
    const { api, counter } = await startTokenReviewApi(this.o.agents, this.o.reviewLatencyMs);
    this.env.cleanup.add('stop the fake Kubernetes API', () => api.stop());
    const kubeconfig = api.writeKubeconfig(this.env.workDir);
    const given = this.o.maxConcurrentTokenReviews;
    const limitArgs = given === undefined ? [] : [`--${LIMIT_FLAG}=${given}`];
    counter.reset();
    const figures = await this.restartWith([...tokenAuthArgs(kubeconfig), ...limitArgs]);
    return {
      ...figures,
      reviews: counter.total,
      peakConcurrentReviews: counter.peak,
      reviewLimit: given === undefined ? this.defaultReviewLimit() : `${given} (--${LIMIT_FLAG})`,
    };
  }

  /** The limit the server applies without the flag, from its --help. */
  private defaultReviewLimit(): string {
    const flag = flagInHelp(serverHelp(this.o.serverBin), LIMIT_FLAG);
    if (!flag.present) return `none (the server has no --${LIMIT_FLAG})`;
    return flag.default === undefined ? 'the server default' : `${flag.default} (server default)`;
  }
}
