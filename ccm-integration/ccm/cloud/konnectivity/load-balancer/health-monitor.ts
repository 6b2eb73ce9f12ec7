// Backend health, checked through the tunnel every healthCheckInterval: a TCP dial of the
// node's nodePort (externalTrafficPolicy: Cluster), or `GET /healthz` on the Service's
// healthCheckNodePort answering 200 (Local: kube-proxy answers 200 only on nodes with a ready
// endpoint). Two failed checks in a row mark a healthy backend unhealthy (one slow check on a
// busy CCM does not empty the pool), its first check failing marks it at once, and one good
// check makes it healthy again: a failing node leaves the pool within two intervals (plus a
// timeout). Targets are shared: the same
// node:port is checked once however many load balancers use it.
import http from 'node:http';
import type { Logger } from '../../../../../common/log.js';
import { errorText } from '../../../../../common/log.js';
import type { EgressDialer } from '../../../../egress-selector/egress-dialer-types.js';

export type ProbeKind = 'tcp' | 'http';
export type Health = 'unknown' | 'healthy' | 'unhealthy';

export interface Probe {
  kind: ProbeKind;
  host: string;
  port: number;
}

export const HEALTHZ_PATH = '/healthz';

export interface HealthMonitorOptions {
  egress: EgressDialer;
  intervalMs: number;
  timeoutMs: number;
  log: Logger;
}

/** Failed checks in a row that take a healthy backend out. */
const FAILURES_TO_EJECT = 2;

export class HealthTarget {
  health: Health = 'unknown';
  lastError = '';
  /** Failed checks in a row. */
  private failures = 0;
  refs = 0;
  /** Settles once the first check has an answer. */
  readonly firstResult: Promise<void>;
  private settleFirst: () => void = () => undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly stopping = new AbortController();

  constructor(
    readonly probe: Probe,
    private readonly check: (probe: Probe, signal: AbortSignal) => Promise<void>,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    this.firstResult = new Promise((resolve) => {
      this.settleFirst = resolve;
    });
  }

  /** Unknown counts as usable: a backend is not refused before its first check has answered. */
  get usable(): boolean {
    return this.health !== 'unhealthy';
  }

  start(): void {
    void this.runOnce();
  }

  stop(): void {
    this.stopping.abort();
    clearTimeout(this.timer);
    this.settleFirst();
  }

  /** A call, so that a check after an await reads the signal anew (no narrowing). */
  private isStopped(): boolean {
    return this.stopping.signal.aborted;
  }

  private async runOnce(): Promise<void> {
    if (this.isStopped()) return;
    let next: Health;
    let error = '';
    try {
      await this.check(this.probe, this.stopping.signal);
      next = 'healthy';
      this.failures = 0;
    } catch (err) {
      error = errorText(err);
      this.failures++;
      next = this.health === 'healthy' && this.failures < FAILURES_TO_EJECT ? 'healthy' : 'unhealthy';
    }
    if (this.isStopped()) return;
    if (error && next === 'healthy') {
      const { kind, host, port } = this.probe;
      this.log.debug({ check: kind, target: `${host}:${port}`, error }, 'backend check failed once');
    }
    if (next !== this.health) {
      const { kind, host, port } = this.probe;
      const fields = { check: kind, target: `${host}:${port}`, health: next, ...(error ? { error } : {}) };
      if (this.health === 'unknown' && next === 'healthy') this.log.debug(fields, 'backend healthy');
      else this.log.info(fields, next === 'healthy' ? 'backend healthy again' : 'backend unhealthy');
    }
    this.health = next;
    this.lastError = error;
    this.settleFirst();
    this.timer = setTimeout(() => void this.runOnce(), this.intervalMs);
    this.timer.unref();
  }
}

export class HealthMonitor {
  private readonly targets = new Map<string, HealthTarget>();
  private readonly agent: http.Agent;

  constructor(private readonly options: HealthMonitorOptions) {
    this.agent = options.egress.httpAgent({ keepAlive: false });
  }

  /** The shared target of `probe`, started on first use; pair with release(). */
  acquire(probe: Probe): HealthTarget {
    const key = probeKey(probe);
    let target = this.targets.get(key);
    if (!target) {
      target = new HealthTarget(
        probe,
        (p, signal) => this.probeOnce(p, signal),
        this.options.intervalMs,
        this.options.log,
      );
      this.targets.set(key, target);
      target.start();
    }
    target.refs++;
    return target;
  }

  release(target: HealthTarget): void {
    target.refs--;
    if (target.refs > 0) return;
    target.stop();
    this.targets.delete(probeKey(target.probe));
  }

  stop(): void {
    for (const target of this.targets.values()) target.stop();
    this.targets.clear();
    this.agent.destroy();
  }

  /**
   * One check, bounded by the timeout and cut by `stopping`. One controller per check, not
   * AbortSignal.any: on Node 20 that keeps every dependent signal of a long-lived source alive.
   */
  private async probeOnce(probe: Probe, stopping: AbortSignal): Promise<void> {
    const controller = new AbortController();
    const onStop = () => controller.abort();
    stopping.addEventListener('abort', onStop, { once: true });
    const timer = setTimeout(() => {
      controller.abort(new Error(`no answer within ${this.options.timeoutMs}ms`));
    }, this.options.timeoutMs);
    try {
      await this.probeWith(probe, controller.signal);
    } catch (err) {
      const reason: unknown = controller.signal.reason;
      throw controller.signal.aborted && reason instanceof Error ? reason : err;
    } finally {
      clearTimeout(timer);
      stopping.removeEventListener('abort', onStop);
    }
  }

  private async probeWith(probe: Probe, signal: AbortSignal): Promise<void> {
    if (probe.kind === 'tcp') {
      const socket = await this.options.egress.dial(probe.host, probe.port, {
        signal,
        timeoutMs: this.options.timeoutMs,
      });
      socket.destroy();
      return;
    }
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.get(
        {
          host: probe.host,
          port: probe.port,
          path: HEALTHZ_PATH,
          agent: this.agent,
          signal,
          headers: { 'user-agent': 'konnectivity-ccm' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.once('error', reject);
    });
    if (status !== 200) throw new Error(`GET ${HEALTHZ_PATH} answered ${status}`);
  }
}

function probeKey(probe: Probe): string {
  return `${probe.kind}:${probe.host}:${probe.port}`;
}
