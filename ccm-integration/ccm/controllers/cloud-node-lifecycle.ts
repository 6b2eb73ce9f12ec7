// The cloud-node-lifecycle controller (k8s.io/cloud-provider controllers/nodelifecycle).
// Every --node-monitor-period, for each Node whose Ready condition is not True: an instance
// the cloud no longer has gets its Node deleted (Event DeletingNode); an instance the cloud
// reports shut down gets the taint node.cloudprovider.kubernetes.io/shutdown:NoSchedule.
// A Ready Node loses that taint, as upstream; so does a NotReady one whose instance the
// cloud reports running again (upstream keeps the taint until Ready: the taint then claims
// a shutdown that the cloud denies). Errors are logged and tried again the next period.
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1Node, V1Taint } from '@kubernetes/client-node';
import { apiStatus } from '../../../common/kube/client.js';
import type { Logger } from '../../../common/log.js';
// One line for client-node's ApiException (its own message holds the whole body and headers).
import { apiErrorText } from '../../../common/kube/client.js';
import type { InstancesV2 } from '../cloud/cloud-provider.js';
import type { Controller, ControllerContext } from '../controller.js';
import { nodeRef, pause, plainTaint, untilAborted, waitForSync } from './cloud-node.js';

export const TAINT_SHUTDOWN = 'node.cloudprovider.kubernetes.io/shutdown';
const SHUTDOWN_EFFECT = 'NoSchedule';

/** Upstream's updateTaintBackoff: 5 tries, 100 ms with full jitter. */
const TAINT_RETRIES = 5;
const TAINT_RETRY_DELAY_MS = 100;

export class CloudNodeLifecycleController implements Controller {
  readonly name = 'cloud-node-lifecycle';

  async run(ctx: ControllerContext, signal: AbortSignal): Promise<void> {
    const instances = ctx.cloud.instancesV2();
    const log = ctx.log.child({ controller: this.name });
    if (!instances) {
      log.warn('the cloud provider has no instances: cloud-node-lifecycle does nothing');
      await untilAborted(signal);
      return;
    }
    if (!(await waitForSync([ctx.nodes], signal))) return;
    const monitor = new NodeMonitor(ctx, instances, log, signal);
    do {
      const started = performance.now();
      const failed = await monitor.monitorNodes();
      ctx.observeSync(this.name, (performance.now() - started) / 1000, failed);
    } while (await pause(ctx.options.nodeMonitorPeriodMs, signal));
  }
}

class NodeMonitor {
  constructor(
    private readonly ctx: ControllerContext,
    private readonly instances: InstancesV2,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
  ) {}

  /** A call, so that a check after an await reads the signal anew (no narrowing). */
  private isStopped(): boolean {
    return this.signal.aborted;
  }

  /** Upstream's MonitorNodes. True when something failed (to be tried again next period). */
  async monitorNodes(): Promise<boolean> {
    let failed = false;
    for (const node of this.ctx.nodes.list()) {
      if (this.isStopped()) return failed;
      try {
        await this.monitorNode(node);
      } catch (err) {
        failed = true;
        if (this.isStopped()) return failed;
        this.log.error({ node: node.metadata?.name, err: apiErrorText(err) }, 'error monitoring node');
      }
    }
    return failed;
  }

  private async monitorNode(node: V1Node): Promise<void> {
    const name = node.metadata?.name ?? '';
    if (readyStatus(node) === 'True') {
      await this.removeShutdownTaint(node);
      return;
    }
    // NotReady: has the instance left the cloud?
    let exists: boolean;
    try {
      exists = await this.instances.instanceExists(node, this.signal);
    } catch (err) {
      throw new Error(`error checking if node ${name} exists: ${apiErrorText(err)}`, { cause: err });
    }
    if (!exists) {
      await this.deleteNode(node);
      return;
    }
    let shutdown: boolean;
    try {
      shutdown = await this.instances.instanceShutdown(node, this.signal);
    } catch (err) {
      throw new Error(`error checking if node ${name} is shutdown: ${apiErrorText(err)}`, { cause: err });
    }
    if (shutdown) await this.addShutdownTaint(node);
    else await this.removeShutdownTaint(node);
  }

  private async deleteNode(node: V1Node): Promise<void> {
    const name = node.metadata?.name ?? '';
    const ref = nodeRef(node);
    this.log.info({ node: name }, 'deleting node since it is no longer present in cloud provider');
    this.ctx.events.event(
      ref,
      'Normal',
      'DeletingNode',
      `Deleting node ${name} because it does not exist in the cloud provider`,
    );
    try {
      await this.ctx.core.deleteNode({ name });
    } catch (err) {
      if (apiStatus(err) === 404) return;
      this.ctx.events.event(
        ref,
        'Warning',
        'DeletingNodeFailed',
        `Failed deleting node ${name}: ${apiErrorText(err)}`,
      );
      throw new Error(`unable to delete node "${name}": ${apiErrorText(err)}`, { cause: err });
    }
  }

  /** Upstream's AddOrUpdateTaintOnNode: no write when the taint is already there as it should be. */
  private addShutdownTaint(node: V1Node): Promise<void> {
    return this.updateTaints(node, (taints) => {
      const same = taints.find(isShutdownTaint);
      if (same && !same.value && !same.timeAdded) return undefined;
      return [...taints.filter((t) => !isShutdownTaint(t)), { key: TAINT_SHUTDOWN, effect: SHUTDOWN_EFFECT }];
    });
  }

  /** Upstream's RemoveTaintOffNode: no write when the Node does not carry it. */
  private removeShutdownTaint(node: V1Node): Promise<void> {
    return this.updateTaints(node, (taints) =>
      taints.some(isShutdownTaint) ? taints.filter((t) => !isShutdownTaint(t)) : undefined,
    );
  }

  /**
   * Upstream's PatchNodeTaints: a strategic merge patch of spec.taints (replaced whole: the
   * list has no merge key) guarded by the resourceVersion it was computed from; on a conflict
   * the Node is read again and `change` applied anew. `change` returns undefined for no change.
   */
  private async updateTaints(
    node: V1Node,
    change: (taints: V1Taint[]) => V1Taint[] | undefined,
  ): Promise<void> {
    const name = node.metadata?.name ?? '';
    const { k8s } = this.ctx.kube;
    let current = node;
    for (let attempt = 1; ; attempt++) {
      const taints = change(current.spec?.taints ?? []);
      if (!taints) return;
      try {
        await this.ctx.core.patchNode(
          {
            name,
            body: {
              metadata: { resourceVersion: current.metadata?.resourceVersion },
              spec: { taints: taints.map(plainTaint) },
            },
          },
          k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
        );
        this.log.info({ node: name, shutdownTaint: taints.some(isShutdownTaint) }, 'patched node taints');
        return;
      } catch (err) {
        const status = apiStatus(err);
        if (status === 404) return;
        if (status !== 409 || attempt >= TAINT_RETRIES) {
          throw new Error(`error patching taints of node ${name}: ${apiErrorText(err)}`, { cause: err });
        }
      }
      await sleep(TAINT_RETRY_DELAY_MS * (1 + Math.random()), undefined, { signal: this.signal });
      try {
        current = await this.ctx.core.readNode({ name });
      } catch (err) {
        if (apiStatus(err) === 404) return;
        throw err;
      }
    }
  }
}

function isShutdownTaint(t: V1Taint): boolean {
  return t.key === TAINT_SHUTDOWN && t.effect === SHUTDOWN_EFFECT;
}

/** The Ready condition's status; Unknown when the Node has none (as upstream). */
function readyStatus(node: V1Node): string {
  return node.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';
}
