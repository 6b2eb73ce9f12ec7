// The Kubernetes API client, loaded only when a flag needs it: @kubernetes/client-node costs
// ~0.3 s and tens of MiB at import, which a server without token auth or leases never pays.
import type * as k8s from '@kubernetes/client-node';
import { ErrorCode, TunnelError } from '../errors.js';
import { errorText, type Logger } from '../log.js';

export type K8sModule = typeof k8s;

export interface KubeClient {
  readonly k8s: K8sModule;
  readonly config: k8s.KubeConfig;
}

/** The content type our client speaks; --kube-api-content-type can only name this one. */
export const JSON_CONTENT_TYPE = 'application/json';

/**
 * --kube-api-content-type: upstream's client-go can send protobuf; @kubernetes/client-node
 * speaks JSON only. JSON (or empty) is honoured; anything else is accepted with a warning, so
 * upstream manifests that ask for protobuf still start.
 */
export function checkKubeContentType(value: string, log: Logger): void {
  const type = value.split(';')[0]?.trim().toLowerCase() ?? '';
  if (type === '' || type === JSON_CONTENT_TYPE) return;
  log.warn(
    { requested: value, used: JSON_CONTENT_TYPE },
    '--kube-api-content-type: this client speaks JSON only; requests to the Kubernetes API are sent as application/json',
  );
}

/** From a kubeconfig file, or the in-cluster service account when `kubeconfig` is empty. */
export async function loadKubeClient(kubeconfig: string, log?: Logger): Promise<KubeClient> {
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
  const cluster = config.getCurrentCluster();
  if (!cluster) {
    throw new TunnelError(ErrorCode.CONFIG, `--kubeconfig ${kubeconfig} names no current cluster`);
  }
  if (cluster.server.startsWith('http:') && !cluster.skipTLSVerify) {
    // client-go accepts a plain-HTTP server; client-node refuses one unless TLS verification is
    // "skipped", which means nothing without TLS. Accept it as client-go does, and say so.
    log?.warn(
      { server: cluster.server },
      'the kubeconfig names a plain-HTTP API server: requests and tokens travel unencrypted',
    );
    config.loadFromOptions({
      clusters: config.clusters.map((c) => (c === cluster ? { ...c, skipTLSVerify: true } : c)),
      users: config.users,
      contexts: config.contexts,
      currentContext: config.currentContext,
    });
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

/**
 * A failed API call in one line: "HTTP 409: <the Status message>" for client-node's
 * ApiException (whose own message carries the whole body and every header), else the message.
 */
export function apiErrorText(err: unknown): string {
  const code = apiStatus(err);
  if (code === undefined) return errorText(err);
  let body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body) as unknown;
    } catch {
      // plain text: shown as is
    }
  }
  let message = '';
  if (typeof body === 'string') message = body;
  else if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string')
    message = body.message;
  return `HTTP ${code}${message ? `: ${message}` : ''}`;
}
