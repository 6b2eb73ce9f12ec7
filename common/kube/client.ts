// The Kubernetes API client, loaded only when a flag needs it: @kubernetes/client-node costs
// ~0.3 s and tens of MiB at import, which a server without token auth or leases never pays.
import type * as k8s from '@kubernetes/client-node';
import { ErrorCode, TunnelError } from '../errors.js';

export type K8sModule = typeof k8s;

export interface KubeClient {
  readonly k8s: K8sModule;
  readonly config: k8s.KubeConfig;
}

/** From a kubeconfig file, or the in-cluster service account when `kubeconfig` is empty. */
export async function loadKubeClient(kubeconfig: string): Promise<KubeClient> {
  if (!kubeconfig && (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT)) {
    throw new TunnelError(
      ErrorCode.CONFIG,
      'cannot load the in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined (or set --kubeconfig)',
    );
  }
  const mod = await import('@kubernetes/client-node');
  const config = new mod.KubeConfig();
  try {
    if (kubeconfig) config.loadFromFile(kubeconfig);
    else config.loadFromCluster();
  } catch (err) {
    throw new TunnelError(
      ErrorCode.CONFIG,
      `cannot load ${kubeconfig ? `--kubeconfig ${kubeconfig}` : 'the in-cluster configuration'}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  if (!config.getCurrentCluster()) {
    throw new TunnelError(ErrorCode.CONFIG, `--kubeconfig ${kubeconfig} names no current cluster`);
  }
  return { k8s: mod, config };
}

/** The HTTP status of a failed client-node call, when it has one. */
export function apiStatus(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = err.code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}
