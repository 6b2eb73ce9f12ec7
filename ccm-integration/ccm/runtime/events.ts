// core/v1 Events about the objects the controllers act on, as client-go's event recorder
// writes them (source.component "cloud-controller-manager", reportingComponent, first/last
// timestamps and a count). The same object, type, reason and message within 10 minutes bumps
// the count of the Event already written instead of creating another (client-go's correlator,
// in spirit). Recording never throws and never blocks a controller: writes run in the
// background, at most a bounded number at once; beyond that, events are dropped and logged.
import type { CoreV1Api, CoreV1Event } from '@kubernetes/client-node';
import { apiStatus, type KubeClient } from '../../../common/kube/client.js';
import type { Logger } from '../../../common/log.js';
import { apiErrorText } from '../../../common/kube/client.js';
import type { EventRecorder, EventTarget } from '../controller.js';

export const EVENT_COMPONENT = 'cloud-controller-manager';
const CORRELATION_WINDOW_MS = 10 * 60 * 1000;
/** client-go's correlator cache size. */
const MAX_CORRELATED = 4096;
const DEFAULT_MAX_IN_FLIGHT = 100;

export interface EventRecorderOptions {
  /** reportingInstance: who wrote the Event (the host name, as client-go). */
  instance: string;
  maxInFlight?: number;
  log: Logger;
  now?: () => number;
}

interface Correlated {
  namespace: string;
  name: string;
  count: number;
  lastSeen: number;
  /** Writes of one series run in order: a count bump never overtakes the create. */
  tail: Promise<void>;
}

export class KubeEventRecorder implements EventRecorder {
  private readonly series = new Map<string, Correlated>();
  private readonly writes = new Set<Promise<void>>();
  private readonly maxInFlight: number;
  private readonly now: () => number;
  private dropped = 0;
  private sequence = 0;

  constructor(
    private readonly kube: KubeClient,
    private readonly core: CoreV1Api,
    private readonly options: EventRecorderOptions,
  ) {
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.now = options.now ?? Date.now;
  }

  /** Writes in progress (for tests and shutdown). */
  get inFlight(): number {
    return this.writes.size;
  }

  event(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void {
    try {
      this.record(target, type, reason, message);
    } catch (err) {
      this.options.log.warn({ reason, error: apiErrorText(err) }, 'cannot record event');
    }
  }

  /** Waits for the writes in progress, at most `timeoutMs`. */
  async flush(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.writes]),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
  }

  private record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const meta = target.metadata ?? {};
    const objectName = meta.name ?? '';
    // Events about cluster-scoped objects (Nodes) live in "default", as client-go puts them.
    const namespace = meta.namespace ?? 'default';
    const log = this.options.log;
    if (this.writes.size >= this.maxInFlight) {
      if (this.dropped++ === 0)
        log.warn({ reason, object: objectName }, 'too many events in flight; dropping');
      return;
    }
    if (this.dropped > 0) {
      log.warn({ dropped: this.dropped }, 'events were dropped');
      this.dropped = 0;
    }
    const now = this.now();
    const key = [namespace, target.kind ?? '', objectName, meta.uid ?? '', type, reason, message].join(
      '\u0000',
    );
    const previous = this.series.get(key);
    let entry: Correlated;
    let write: (entry: Correlated) => Promise<void>;
    if (previous && now - previous.lastSeen <= CORRELATION_WINDOW_MS) {
      entry = previous;
      entry.count++;
      entry.lastSeen = now;
      const count = entry.count;
      write = (e) => this.bump(e, count, now, target, type, reason, message);
    } else {
      entry = {
        namespace,
        name: this.eventName(objectName, now),
        count: 1,
        lastSeen: now,
        tail: Promise.resolve(),
      };
      write = (e) => this.create(e, 1, now, now, target, type, reason, message);
    }
    // Most recent last, for eviction of the least recently seen.
    this.series.delete(key);
    this.series.set(key, entry);
    if (this.series.size > MAX_CORRELATED) {
      const oldest = this.series.keys().next();
      if (!oldest.done) this.series.delete(oldest.value);
    }
    const done = entry.tail
      .then(() => write(entry))
      .catch((err: unknown) => {
        log.warn({ reason, error: apiErrorText(err) }, 'cannot record event');
      });
    entry.tail = done;
    this.writes.add(done);
    void done.finally(() => this.writes.delete(done));
  }

  private async bump(
    entry: Correlated,
    count: number,
    at: number,
    target: EventTarget,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    try {
      await this.core.patchNamespacedEvent(
        {
          name: entry.name,
          namespace: entry.namespace,
          body: { count, lastTimestamp: new Date(at).toISOString() },
        },
        this.kube.k8s.setHeaderOptions('Content-Type', this.kube.k8s.PatchStrategy.MergePatch),
      );
    } catch (err) {
      if (apiStatus(err) === 404) {
        // The Event expired (the API server keeps them 1 h by default): start a new one.
        entry.name = this.eventName(target.metadata?.name ?? '', at);
        await this.create(entry, count, at, at, target, type, reason, message);
        return;
      }
      this.options.log.warn({ event: entry.name, reason, error: apiErrorText(err) }, 'cannot update event');
    }
  }

  private async create(
    entry: Correlated,
    count: number,
    first: number,
    last: number,
    target: EventTarget,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
  ): Promise<void> {
    const meta = target.metadata ?? {};
    const body: CoreV1Event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: entry.name, namespace: entry.namespace },
      involvedObject: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
      type,
      reason,
      message,
      count,
      firstTimestamp: new Date(first),
      lastTimestamp: new Date(last),
      source: { component: EVENT_COMPONENT },
      reportingComponent: EVENT_COMPONENT,
      reportingInstance: this.options.instance,
    };
    try {
      await this.core.createNamespacedEvent({ namespace: entry.namespace, body });
    } catch (err) {
      this.options.log.warn(
        { event: entry.name, namespace: entry.namespace, reason, error: apiErrorText(err) },
        'cannot write event',
      );
    }
  }

  /** `<object>.<hex time>`, as client-go names Events; unique within this process. */
  private eventName(objectName: string, at: number): string {
    const stamp = BigInt(at) * 1_000_000n + BigInt(this.sequence++ % 1_000_000);
    return `${objectName || 'unknown'}.${stamp.toString(16)}`;
  }
}
