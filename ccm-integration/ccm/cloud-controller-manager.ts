// konnectivity-ccm's composition root: the Kubernetes client, the cloud provider (by name from
// the registry), the health/metrics port, and leader election. While this replica leads, it
// runs informers for Nodes and Services and every enabled controller; when leadership is lost
// it stops them (and waits until they have stopped), then campaigns again as a standby instead
// of exiting as upstream does. shutdown() stops the controllers, releases the Lease so a
// standby takes over at once, stops the provider and closes the port.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { CoreV1Api, V1Node, V1Service } from '@kubernetes/client-node';
import { TIMED_OUT, withDeadline } from '../../common/deadline.js';
import { healthRoutes, HttpEndpoint, metricsRoute } from '../../common/http-endpoints.js';
import { loadKubeClient, type KubeClient } from '../../common/kube/client.js';
import { errorText, type Logger } from '../../common/log.js';
import { egressDialer } from '../egress-selector/egress-dialer.js';
import { loadEgressSelectorConfiguration } from '../egress-selector/config.js';
import type { EgressDialer } from '../egress-selector/egress-dialer-types.js';
import {
  CloudConfigError,
  cloudProviderFactory,
  registeredCloudProviders,
  type CloudProvider,
} from './cloud/cloud-provider.js';
import type { Controller, ControllerContext } from './controller.js';
import { builtInControllers } from './controllers/index.js';
import type { CcmConfig } from './options.js';
import { KubeEventRecorder } from './runtime/events.js';
import { nodeInformer, serviceInformer, type ListWatchInformer } from './runtime/informer.js';
import { instrumentCloud } from './runtime/instrumented-cloud.js';
import { LeaderElector } from './runtime/leader-election.js';
import { CcmMetrics } from './runtime/metrics.js';
import { RateLimitedWorkQueue } from './runtime/work-queue.js';

/** How long shutdown waits for the controllers to stop and the Lease to be released. */
const SHUTDOWN_TIMEOUT_MS = 20_000;
const EVENT_FLUSH_TIMEOUT_MS = 2_000;
/** After an unexpected failure of the election loop, before campaigning again. */
const CAMPAIGN_RETRY_MS = 1_000;

export interface CcmDependencies {
  /** The controllers to choose from by name, made afresh for every leadership term (default: built in). */
  controllers?: () => Controller[];
  metrics?: CcmMetrics;
}

export interface CcmStarted {
  provider: string;
  /** The controllers that run while this replica leads. */
  controllers: string[];
  identity: string;
  host: string;
  securePort: number;
  leaderElection: boolean;
}

type State = 'new' | 'standby' | 'leading' | 'stopping';

interface Term {
  nodes: ListWatchInformer<V1Node>;
  services: ListWatchInformer<V1Service>;
}

export class CloudControllerManager {
  readonly metrics: CcmMetrics;
  private readonly log: Logger;
  private readonly identity: string;
  private readonly makeControllers: () => Controller[];
  private readonly stopping = new AbortController();
  private state: State = 'new';
  private term: Term | undefined;
  private loop: Promise<void> = Promise.resolve();
  private kube: KubeClient | undefined;
  private core: CoreV1Api | undefined;
  private provider: CloudProvider | undefined;
  private cloud: CloudProvider | undefined;
  private egress: EgressDialer | undefined;
  private events: KubeEventRecorder | undefined;
  private endpoint: HttpEndpoint | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly config: CcmConfig,
    deps: CcmDependencies = {},
  ) {
    this.log = config.log;
    this.metrics = deps.metrics ?? new CcmMetrics();
    this.makeControllers = deps.controllers ?? builtInControllers;
    this.identity = config.identity ?? `${hostname()}_${randomUUID()}`;
  }

  /** The controllers that run while leading: enabled by --controllers and available. */
  controllerNames(): string[] {
    const available = new Set(this.makeControllers().map((c) => c.name));
    return this.config.controllers.filter((name) => available.has(name));
  }

  async start(): Promise<CcmStarted> {
    const { config } = this;
    const factory = cloudProviderFactory(config.cloudProvider);
    if (!factory) {
      throw new CloudConfigError(
        `--cloud-provider "${config.cloudProvider}" is not registered (registered providers: ${registeredCloudProviders().join(', ')})`,
      );
    }
    const available = new Set(this.makeControllers().map((c) => c.name));
    for (const name of config.controllers) {
      if (name === 'route') continue; // upstream's route controller needs a provider with routes: none here has
      if (!available.has(name))
        this.log.warn({ controller: name }, 'controller is enabled but not available; skipped');
    }
    try {
      const kube = await loadKubeClient(config.kubeconfig);
      this.kube = kube;
      this.core = kube.config.makeApiClient(kube.k8s.CoreV1Api);
      if (config.egress) {
        this.egress = egressDialer(
          loadEgressSelectorConfiguration(config.egress.configFile),
          config.egress.selection,
        );
        this.log.info(
          { selection: config.egress.selection, proxyProtocol: this.egress.proxyProtocol },
          "the provider's dials go through the egress selector",
        );
      }
      this.provider = await factory({
        cloudConfigPath: config.cloudConfig,
        kube,
        log: this.log.child({ cloudProvider: config.cloudProvider }),
        egress: this.egress,
        registry: this.metrics.registry,
      });
      this.cloud = instrumentCloud(this.provider, this.metrics, this.log);
      this.events = new KubeEventRecorder(kube, this.core, {
        instance: hostname(),
        log: this.log.child({ part: 'events' }),
      });
      this.endpoint = new HttpEndpoint({
        ...healthRoutes(() => this.readiness()),
        ...metricsRoute(this.metrics.registry),
      });
      const securePort = await this.endpoint.listen(config.health.port, config.health.host);
      if (config.leaderElection.enabled) {
        const elector = this.elector(kube);
        this.state = 'standby';
        this.loop = this.campaign(elector);
      } else {
        this.state = 'leading';
        this.loop = this.lead(this.stopping.signal);
      }
      return {
        provider: this.provider.name,
        controllers: this.controllerNames(),
        identity: this.identity,
        host: config.health.host,
        securePort,
        leaderElection: config.leaderElection.enabled,
      };
    } catch (err) {
      await this.release();
      throw err;
    }
  }

  /** Stops the controllers, releases the Lease, stops the provider and closes the port. */
  shutdown(): Promise<void> {
    this.stopped ??= this.stop();
    return this.stopped;
  }

  private async stop(): Promise<void> {
    this.state = 'stopping';
    this.stopping.abort();
    const done = await withDeadline(this.loop, SHUTDOWN_TIMEOUT_MS);
    if (done === TIMED_OUT) {
      this.log.warn({ timeoutMs: SHUTDOWN_TIMEOUT_MS }, 'controllers did not stop in time; stopping anyway');
    }
    await this.release();
  }

  /** Releases what start() acquired (also after a failed start). */
  private async release(): Promise<void> {
    await this.events?.flush(EVENT_FLUSH_TIMEOUT_MS);
    if (this.provider) {
      try {
        await this.provider.stop();
      } catch (err) {
        this.log.warn({ error: errorText(err) }, 'cloud provider did not stop cleanly');
      }
    }
    this.egress?.close();
    await this.endpoint?.close();
  }

  private elector(kube: KubeClient): LeaderElector {
    const le = this.config.leaderElection;
    return new LeaderElector(kube, {
      namespace: le.namespace,
      name: le.name,
      identity: this.identity,
      leaseDurationMs: le.leaseDurationMs,
      renewDeadlineMs: le.renewDeadlineMs,
      retryPeriodMs: le.retryPeriodMs,
      releaseOnCancel: true,
      status: this.metrics.leaderStatus,
      log: this.log.child({ part: 'leader-election' }),
      callbacks: {
        onStartedLeading: (signal) => {
          this.events?.event(
            {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name: le.name, namespace: le.namespace },
            },
            'Normal',
            'LeaderElection',
            `${this.identity} became leader`,
          );
          return this.lead(signal);
        },
        onStoppedLeading: () => {
          if (this.state !== 'stopping') {
            this.state = 'standby';
            this.log.info('controllers stopped; campaigning again as a standby');
          }
        },
      },
    });
  }

  /** Campaigns, leads, and campaigns again after a lost term, until shutdown. */
  private async campaign(elector: LeaderElector): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      try {
        await elector.run(signal);
      } catch (err) {
        this.log.error({ error: errorText(err) }, 'leader election failed; campaigning again');
        await new Promise((resolve) => setTimeout(resolve, CAMPAIGN_RETRY_MS));
      }
    }
  }

  /** One leadership term: informers and controllers until `signal` aborts, then all stopped. */
  private async lead(signal: AbortSignal): Promise<void> {
    const kube = this.kube;
    const core = this.core;
    const cloud = this.cloud;
    const events = this.events;
    if (!kube || !core || !cloud || !events) return;
    if (this.state !== 'stopping') this.state = 'leading';
    const term: Term = {
      nodes: nodeInformer(kube, core, this.log),
      services: serviceInformer(kube, core, this.log),
    };
    this.term = term;
    const ctx: ControllerContext = {
      kube,
      core,
      nodes: term.nodes,
      services: term.services,
      events,
      cloud,
      options: this.config.controllerOptions,
      log: this.log,
      newQueue: (name) => new RateLimitedWorkQueue({ hooks: this.metrics.queueHooks(name) }),
      observeSync: (controller, seconds, failed) => {
        this.metrics.observeSync(controller, seconds, failed);
      },
    };
    const enabled = new Set<string>(this.config.controllers);
    const controllers = this.makeControllers().filter((c) => enabled.has(c.name));
    this.log.info({ controllers: controllers.map((c) => c.name) }, 'leading: starting controllers');
    // Controllers first, so their informer handlers are in place before the first event.
    const runs = controllers.map((c) => this.runController(c, ctx, signal));
    await Promise.all([term.nodes.start(), term.services.start()]);
    void this.logWhenSynced(term, signal);
    await Promise.all(runs);
    await Promise.all([term.nodes.stop(), term.services.stop()]);
    if (this.term === term) this.term = undefined;
    this.log.info('controllers stopped');
    // What only a leader may hold (load balancer listeners) goes with the term.
    await this.provider?.stoppedLeading?.().catch((err: unknown) => {
      this.log.warn({ error: errorText(err) }, 'cloud provider did not release what the leader held');
    });
  }

  private async runController(
    controller: Controller,
    ctx: ControllerContext,
    signal: AbortSignal,
  ): Promise<void> {
    try {
      await controller.run(ctx, signal);
      if (!signal.aborted)
        this.log.warn({ controller: controller.name }, 'controller returned while leading');
    } catch (err) {
      this.log.error({ controller: controller.name, error: errorText(err) }, 'controller failed');
    }
  }

  private async logWhenSynced(term: Term, signal: AbortSignal): Promise<void> {
    await Promise.all([term.nodes.whenSynced(), term.services.whenSynced()]);
    if (!signal.aborted) this.log.info('informer caches synced');
  }

  /**
   * Ready: leading with informers synced, or a standby waiting for the Lease (it can take over
   * at once). Not ready while starting, while a new term's caches fill, and while stopping.
   */
  private readiness(): { ok: boolean; reason: string } {
    switch (this.state) {
      case 'leading': {
        const term = this.term;
        if (term && term.nodes.hasSynced() && term.services.hasSynced()) return { ok: true, reason: '' };
        return { ok: false, reason: 'leading, informer caches not synced yet' };
      }
      case 'standby':
        return { ok: true, reason: '' };
      case 'new':
        return { ok: false, reason: 'starting' };
      case 'stopping':
        return { ok: false, reason: 'shutting down' };
    }
  }
}
