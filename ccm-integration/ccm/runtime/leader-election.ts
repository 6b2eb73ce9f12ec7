// Leader election on a coordination.k8s.io/v1 Lease, with client-go's semantics
// (tools/leaderelection) so our CCM and an upstream one contend correctly for the same lock:
// - the lock is free when it has no holder, or when its record has not changed for
//   leaseDurationSeconds as measured on OUR clock from when we first saw that record (clocks
//   of the candidates are never compared);
// - the leader renews every retry period; it has lost when no renewal succeeded within the
//   renew deadline;
// - writes are optimistic: a replace carries the resourceVersion read, a conflict (409) is a
//   failed attempt;
// - on shutdown the leader releases the lock (holder '', leaseDurationSeconds 1), so a standby
//   takes over at once (client-go's ReleaseOnCancel).
// Ours, beyond client-go: the leading work is awaited after its signal aborts and before the
// lock is released, so a successor never overlaps with controllers that are still stopping.
import type { CoordinationV1Api, V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import type { Gauge } from 'prom-client';
import { apiStatus, type KubeClient } from '../../../common/kube/client.js';
import { TIMED_OUT, withDeadline } from '../../../common/deadline.js';
import type { Logger } from '../../../common/log.js';
import { apiErrorText } from '../../../common/kube/client.js';

/** client-go's JitterFactor: the renew deadline must exceed 1.2 retry periods. */
export const JITTER_FACTOR = 1.2;

export interface LeaderCallbacks {
  /** We lead until `signal` aborts; the promise returned is awaited before the lock is released. */
  onStartedLeading(signal: AbortSignal): Promise<void> | void;
  /** Called once leading work has stopped (after onStartedLeading's promise settled). */
  onStoppedLeading(): void;
  /** The holder we observe changed (our own identity included). */
  onNewLeader?(identity: string): void;
}

export interface LeaderElectionConfig {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Release the lock when run()'s signal aborts while leading. */
  releaseOnCancel: boolean;
  callbacks: LeaderCallbacks;
  /** leader_election_master_status{name} */
  status?: Gauge<'name'>;
  log: Logger;
}

interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  acquireTime: string;
  renewTime: string;
  leaseTransitions: number;
}

/** client-go's errors for a bad configuration, as its NewLeaderElector words them. */
export function leaderElectionConfigError(c: {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}): string | undefined {
  if (c.leaseDurationMs <= c.renewDeadlineMs) return 'leaseDuration must be greater than renewDeadline';
  if (c.renewDeadlineMs <= JITTER_FACTOR * c.retryPeriodMs)
    return 'renewDeadline must be greater than retryPeriod*JitterFactor';
  if (c.leaseDurationMs < 1) return 'leaseDuration must be greater than zero';
  if (c.renewDeadlineMs < 1) return 'renewDeadline must be greater than zero';
  if (c.retryPeriodMs < 1) return 'retryPeriod must be greater than zero';
  return undefined;
}

function timeText(v: Date | string | undefined): string {
  if (v === undefined) return '';
  return v instanceof Date ? v.toISOString() : v;
}

function recordOf(lease: V1Lease): LeaseRecord {
  const spec = lease.spec ?? {};
  return {
    holderIdentity: spec.holderIdentity ?? '',
    leaseDurationSeconds: spec.leaseDurationSeconds ?? 0,
    // client-node hands MicroTime back as the string it received, typed as a Date.
    acquireTime: timeText(spec.acquireTime),
    renewTime: timeText(spec.renewTime),
    leaseTransitions: spec.leaseTransitions ?? 0,
  };
}

/** A record as a Lease spec; times stay the exact strings read or made (MicroTime's format). */
function specOf(record: LeaseRecord): V1LeaseSpec {
  return record as unknown as V1LeaseSpec;
}

function sameRecord(a: LeaseRecord | undefined, b: LeaseRecord): boolean {
  return (
    a !== undefined &&
    a.holderIdentity === b.holderIdentity &&
    a.leaseDurationSeconds === b.leaseDurationSeconds &&
    a.acquireTime === b.acquireTime &&
    a.renewTime === b.renewTime &&
    a.leaseTransitions === b.leaseTransitions
  );
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** One attempt's right to change our state: revoked when it outlives its deadline. */
class Attempt {
  private revoked = false;

  revoke(): void {
    this.revoked = true;
  }

  /** False once the attempt no longer counts: its answer must not change our state. */
  live(): boolean {
    return !this.revoked;
  }
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private observed: LeaseRecord | undefined;
  /** Our clock (ms) when `observed` last changed. */
  private observedAt = 0;
  /** The last Lease object read or written (its resourceVersion makes our writes optimistic). */
  private lease: V1Lease | undefined;
  private reportedLeader = '';
  private readonly log: Logger;

  constructor(
    private readonly kube: KubeClient,
    private readonly config: LeaderElectionConfig,
  ) {
    const problem = leaderElectionConfigError(config);
    if (problem) throw new Error(problem);
    this.api = kube.config.makeApiClient(kube.k8s.CoordinationV1Api);
    this.log = config.log.child({ lease: `${config.namespace}/${config.name}` });
    this.setStatus(false);
  }

  get identity(): string {
    return this.config.identity;
  }

  isLeader(): boolean {
    return this.observed?.holderIdentity === this.config.identity;
  }

  /** The holder we last observed ('' when none). */
  leader(): string {
    return this.observed?.holderIdentity ?? '';
  }

  /**
   * One term: campaigns until the lock is ours (or `signal` aborts), leads until the lock is
   * lost (or `signal` aborts), then stops the leading work and returns. Call again to campaign
   * again.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (!(await this.acquire(signal))) return;
    const term = new AbortController();
    this.setStatus(true);
    this.log.info({ identity: this.config.identity }, 'became leader');
    const settled = this.startLeading(term.signal);
    const lost = await this.renew(signal);
    this.setStatus(false);
    if (lost) this.log.warn({ identity: this.config.identity }, 'leadership lost');
    term.abort();
    await settled;
    if (!lost && this.config.releaseOnCancel) await this.release();
    this.config.callbacks.onStoppedLeading();
  }

  /** Runs onStartedLeading; the promise settles when the leading work has ended, never rejects. */
  private async startLeading(signal: AbortSignal): Promise<void> {
    try {
      await this.config.callbacks.onStartedLeading(signal);
    } catch (err) {
      this.log.error({ error: apiErrorText(err) }, 'leading work failed');
    }
  }

  /** Gives the lock up if we hold it (holder '' and leaseDurationSeconds 1, as client-go). */
  async release(): Promise<boolean> {
    if (!this.isLeader() || !this.lease) return true;
    const now = this.microTime();
    const body = this.withSpec(this.lease, {
      holderIdentity: '',
      leaseDurationSeconds: 1,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: this.observed?.leaseTransitions ?? 0,
    });
    try {
      const updated = await withDeadline(
        this.api.replaceNamespacedLease({ name: this.config.name, namespace: this.config.namespace, body }),
        this.config.renewDeadlineMs,
      );
      if (updated === TIMED_OUT) throw new Error(`no answer within ${this.config.renewDeadlineMs}ms`);
      this.observe(updated);
      this.log.info('lease released');
      return true;
    } catch (err) {
      this.log.warn({ error: apiErrorText(err) }, 'cannot release the lease; it expires by itself');
      return false;
    }
  }

  /** Tries now, then after a jittered retry period, until the lock is ours. */
  private async acquire(signal: AbortSignal): Promise<boolean> {
    const { retryPeriodMs } = this.config;
    let waitingLogged = false;
    while (!signal.aborted) {
      if (await this.attempt(this.config.renewDeadlineMs)) return true;
      if (!waitingLogged) {
        this.log.info({ leader: this.leader() }, 'waiting for the lease (standby)');
        waitingLogged = true;
      }
      await sleep(retryPeriodMs + Math.random() * JITTER_FACTOR * retryPeriodMs, signal);
    }
    return false;
  }

  /** Renews every retry period; resolves true when the lock is lost, false when `signal` aborted. */
  private async renew(signal: AbortSignal): Promise<boolean> {
    const { retryPeriodMs, renewDeadlineMs } = this.config;
    const cancelled = () => signal.aborted;
    while (!cancelled()) {
      await sleep(retryPeriodMs, signal);
      if (cancelled()) return false;
      const deadline = Date.now() + renewDeadlineMs;
      for (;;) {
        if (await this.attempt(deadline - Date.now())) break;
        if (cancelled()) return false;
        if (Date.now() + retryPeriodMs >= deadline) return true;
        await sleep(retryPeriodMs, signal);
        if (cancelled()) return false;
      }
    }
    return false;
  }

  /** tryAcquireOrRenew, bounded: an answer after `budgetMs` no longer counts. */
  private async attempt(budgetMs: number): Promise<boolean> {
    const attempt = new Attempt();
    try {
      const result = await withDeadline(this.tryAcquireOrRenew(attempt), Math.max(1, budgetMs));
      if (result === TIMED_OUT) {
        this.log.warn({ budgetMs }, 'lease request did not answer in time');
        return false;
      }
      return result;
    } catch (err) {
      this.log.warn({ error: apiErrorText(err) }, 'error retrieving or updating the lease');
      return false;
    } finally {
      attempt.revoke();
    }
  }

  private async tryAcquireOrRenew(attempt: Attempt): Promise<boolean> {
    const { name, namespace, identity } = this.config;
    const now = this.microTime();
    const leaseDurationSeconds = Math.floor(this.config.leaseDurationMs / 1000);
    const desired: LeaseRecord = {
      holderIdentity: identity,
      leaseDurationSeconds,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: 0,
    };

    // Fast path, as client-go: the leader with a valid lease writes without reading first.
    if (this.isLeader() && this.isLeaseValid(Date.now()) && this.lease && this.observed) {
      const body = this.withSpec(this.lease, {
        ...desired,
        acquireTime: this.observed.acquireTime,
        leaseTransitions: this.observed.leaseTransitions,
      });
      try {
        const updated = await this.api.replaceNamespacedLease({ name, namespace, body });
        if (!attempt.live()) return false;
        this.observe(updated);
        return true;
      } catch (err) {
        if (!attempt.live()) return false;
        this.log.debug({ error: apiErrorText(err) }, 'optimistic lease update failed; reading it');
      }
    }

    let current: V1Lease;
    try {
      current = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (apiStatus(err) !== 404) throw err;
      if (!attempt.live()) return false;
      const created = await this.api.createNamespacedLease({
        namespace,
        body: {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: specOf(desired),
        },
      });
      if (!attempt.live()) return false;
      this.observe(created);
      return true;
    }
    if (!attempt.live()) return false;
    this.lease = current;
    const record = recordOf(current);
    if (!sameRecord(this.observed, record)) {
      this.observed = record;
      this.observedAt = Date.now();
      this.reportLeader();
    }
    if (record.holderIdentity !== '' && this.isLeaseValid(Date.now()) && !this.isLeader()) {
      return false;
    }
    const spec = this.isLeader()
      ? { ...desired, acquireTime: record.acquireTime, leaseTransitions: record.leaseTransitions }
      : { ...desired, leaseTransitions: record.leaseTransitions + 1 };
    try {
      const updated = await this.api.replaceNamespacedLease({
        name,
        namespace,
        body: this.withSpec(current, spec),
      });
      if (!attempt.live()) return false;
      this.observe(updated);
      return true;
    } catch (err) {
      if (apiStatus(err) === 409) {
        this.log.debug('lease changed under us (conflict)');
        return false;
      }
      throw err;
    }
  }

  private withSpec(lease: V1Lease, record: LeaseRecord): V1Lease {
    return { ...lease, spec: { ...lease.spec, ...specOf(record) } };
  }

  private observe(lease: V1Lease): void {
    this.lease = lease;
    this.observed = recordOf(lease);
    this.observedAt = Date.now();
    this.reportLeader();
  }

  private isLeaseValid(now: number): boolean {
    return this.observedAt + (this.observed?.leaseDurationSeconds ?? 0) * 1000 > now;
  }

  private reportLeader(): void {
    const holder = this.leader();
    if (holder === this.reportedLeader) return;
    this.reportedLeader = holder;
    if (holder === '') return;
    this.log.info({ leader: holder }, 'new leader observed');
    try {
      this.config.callbacks.onNewLeader?.(holder);
    } catch (err) {
      this.log.error({ error: apiErrorText(err) }, 'onNewLeader failed');
    }
  }

  /** A MicroTime as the API wants it (RFC 3339 with microseconds). */
  private microTime(): string {
    return new this.kube.k8s.V1MicroTime().toISOString();
  }

  private setStatus(leading: boolean): void {
    this.config.status?.set({ name: this.config.name }, leading ? 1 : 0);
  }
}
