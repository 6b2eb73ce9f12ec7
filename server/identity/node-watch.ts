// The Nodes identity binding checks claims against: a list+watch of /api/v1/nodes that keeps
// only each Node's facts (node-facts.ts), not the objects. client-node's ListWatch (and an
// informer on it) would keep every Node whole, twice; in a large cluster that is hundreds of
// MiB in a process that sits beside kube-apiserver. Started on first need, so a server whose
// agents never carry a node name never lists Nodes (nor needs the RBAC to).
//
// The loop: list (paged) → watch from the list's resourceVersion, resuming after a normal
// close → relist on 410 Gone → on errors, back off and start over. Once synced, answers come
// from the cache even while the watch restarts (stale but best known, as informers do).
import type { CoreV1Api } from '@kubernetes/client-node';
import { Backoff } from '../../common/backoff.js';
import { apiErrorText, apiStatus, type KubeClient } from '../../common/kube/client.js';
import type { Logger } from '../../common/log.js';
import { nodeFactsOf, sameFacts, type NodeFacts } from './node-facts.js';

export type NodeView =
  | { state: 'found'; facts: NodeFacts }
  /** The cache is synced and holds no Node of that name. */
  | { state: 'absent' }
  /** The first list is not in yet. */
  | { state: 'syncing' }
  /** The first list was refused (401/403): the server may not read Nodes. */
  | { state: 'unavailable'; reason: string };

/** What identity binding asks of a Node cache (NodeWatch, or a table in unit tests). */
export interface NodeSource {
  view(name: string): NodeView;
  /** Starts watching Nodes if not yet started. */
  want(): void;
  /** `name` undefined: any Node may have changed (a relist, a change of state). */
  onChange(listener: (name: string | undefined) => void): void;
  stop(): void;
}

const PAGE_SIZE = 500;
const BACKOFF_INITIAL_MS = 800;
const BACKOFF_CAP_MS = 30_000;
const PATH = '/api/v1/nodes';

class RelistNeeded extends Error {}

export class NodeWatch implements NodeSource {
  private readonly facts = new Map<string, NodeFacts>();
  private readonly listeners: ((name: string | undefined) => void)[] = [];
  private readonly backoff = new Backoff(BACKOFF_INITIAL_MS, BACKOFF_CAP_MS, 2);
  private started = false;
  private stopped = false;
  private synced = false;
  private refused: string | undefined;
  private watchAbort: AbortController | undefined;
  private sleeping: { timer: NodeJS.Timeout; wake: () => void } | undefined;

  constructor(
    private readonly kube: KubeClient,
    private readonly log: Logger,
  ) {}

  view(name: string): NodeView {
    if (this.synced) {
      const facts = this.facts.get(name);
      return facts ? { state: 'found', facts } : { state: 'absent' };
    }
    if (this.refused !== undefined) return { state: 'unavailable', reason: this.refused };
    return { state: 'syncing' };
  }

  want(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.log.info('watching Nodes for identity binding');
    void this.run();
  }

  onChange(listener: (name: string | undefined) => void): void {
    this.listeners.push(listener);
  }

  /** Ends the loop; an API request in flight is dropped when it answers. */
  stop(): void {
    this.stopped = true;
    this.watchAbort?.abort();
    if (this.sleeping) {
      clearTimeout(this.sleeping.timer);
      this.sleeping.wake();
    }
  }

  private async run(): Promise<void> {
    const core = this.kube.config.makeApiClient(this.kube.k8s.CoreV1Api);
    while (!this.stopped) {
      try {
        let resourceVersion = await this.list(core);
        for (;;) resourceVersion = await this.watchFrom(resourceVersion);
      } catch (err) {
        if (this.isStopped()) return;
        if (err instanceof RelistNeeded) continue;
        this.failed(err);
        await this.sleep(this.backoff.next());
      }
    }
  }

  /** Replaces the cache with a fresh list; returns its resourceVersion. */
  private async list(core: CoreV1Api): Promise<string> {
    const next = new Map<string, NodeFacts>();
    let resourceVersion: string;
    let cont: string | undefined;
    do {
      const page = await core.listNode({ limit: PAGE_SIZE, ...(cont ? { _continue: cont } : {}) });
      for (const item of page.items) {
        const facts = nodeFactsOf(item);
        if (facts) next.set(facts.name, facts);
      }
      cont = page.metadata?._continue || undefined;
      resourceVersion = page.metadata?.resourceVersion ?? '';
    } while (cont !== undefined && !this.isStopped());
    if (this.isStopped()) throw new Error('stopped');
    this.facts.clear();
    for (const [name, facts] of next) this.facts.set(name, facts);
    if (!this.synced) this.log.info({ nodes: this.facts.size }, 'Node cache synced');
    this.synced = true;
    this.refused = undefined;
    this.backoff.reset();
    this.notify(undefined);
    return resourceVersion;
  }

  /**
   * One watch from `resourceVersion`; resolves with the version to resume from when the server
   * ends it, throws RelistNeeded on 410 Gone and the error on a failure.
   */
  private async watchFrom(resourceVersion: string): Promise<string> {
    if (this.stopped) throw new Error('stopped');
    const outcome: { version: string; events: number; failure?: Error } = {
      version: resourceVersion,
      events: 0,
    };
    const ended = new Promise<void>((resolve) => {
      const watch = new this.kube.k8s.Watch(this.kube.config);
      const onEvent = (phase: string, obj: unknown) => {
        outcome.events++;
        if (phase === 'ERROR') {
          outcome.failure =
            apiStatusCode(obj) === 410 ? new RelistNeeded() : new Error(`watch error: ${statusText(obj)}`);
          this.watchAbort?.abort();
          return;
        }
        const rv = resourceVersionOf(obj);
        if (rv) outcome.version = rv;
        if (phase === 'ADDED' || phase === 'MODIFIED') this.put(obj);
        else if (phase === 'DELETED') this.remove(obj);
      };
      const done = (err: unknown) => {
        if (err !== null && err !== undefined && outcome.failure === undefined && !this.stopped) {
          const gone = apiStatus(err) === 410 || statusCodeOf(err) === 410;
          outcome.failure = gone
            ? new RelistNeeded()
            : err instanceof Error
              ? err
              : new Error(apiErrorText(err));
        }
        resolve();
      };
      watch
        .watch(PATH, { resourceVersion, allowWatchBookmarks: true }, onEvent, done)
        .then((controller) => {
          this.watchAbort = controller;
          if (this.stopped) controller.abort();
        })
        .catch(done);
    });
    await ended;
    this.watchAbort = undefined;
    if (this.isStopped()) throw new Error('stopped');
    if (outcome.failure) throw outcome.failure;
    // A watch the server closes at once, again and again, must not spin.
    if (outcome.events === 0) await this.sleep(this.backoff.next());
    else this.backoff.reset();
    return outcome.version;
  }

  /** A method, so TypeScript does not narrow the flag across awaits. */
  private isStopped(): boolean {
    return this.stopped;
  }

  private put(obj: unknown): void {
    const facts = nodeFactsOf(obj);
    if (!facts) return;
    const old = this.facts.get(facts.name);
    this.facts.set(facts.name, facts);
    if (!sameFacts(old, facts)) this.notify(facts.name);
  }

  private remove(obj: unknown): void {
    const facts = nodeFactsOf(obj);
    if (facts && this.facts.delete(facts.name)) this.notify(facts.name);
  }

  private failed(err: unknown): void {
    const status = apiStatus(err) ?? statusCodeOf(err);
    const text = apiErrorText(err);
    this.log.warn({ path: PATH, error: text }, 'cannot list or watch Nodes; retrying');
    if (!this.synced && (status === 401 || status === 403) && this.refused === undefined) {
      this.refused = `the server may not list Nodes (${text}): grant it get, list and watch on nodes`;
      this.notify(undefined);
    }
  }

  private notify(name: string | undefined): void {
    for (const listener of this.listeners) listener(name);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        this.sleeping = undefined;
        resolve();
      };
      this.sleeping = { timer: setTimeout(wake, ms), wake };
    });
  }
}

function resourceVersionOf(obj: unknown): string | undefined {
  if (typeof obj !== 'object' || obj === null || !('metadata' in obj)) return undefined;
  const meta = obj.metadata;
  if (typeof meta !== 'object' || meta === null || !('resourceVersion' in meta)) return undefined;
  return typeof meta.resourceVersion === 'string' ? meta.resourceVersion : undefined;
}

/** The code of a Status object (a watch ERROR event). */
function apiStatusCode(obj: unknown): number | undefined {
  if (typeof obj !== 'object' || obj === null || !('code' in obj)) return undefined;
  return typeof obj.code === 'number' ? obj.code : undefined;
}

function statusText(obj: unknown): string {
  if (typeof obj === 'object' && obj !== null && 'message' in obj && typeof obj.message === 'string')
    return obj.message;
  return JSON.stringify(obj);
}

/** client-node's Watch reports a refused watch request as an Error with statusCode. */
function statusCodeOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null || !('statusCode' in err)) return undefined;
  return typeof err.statusCode === 'number' ? err.statusCode : undefined;
}
