// Every flag the upstream v0.33 proxy-agent and proxy-server define (cmd/{agent,server}/app/
// options, plus the klog flags their main() adds), with a valid value for each. Manifests and
// Helm values written for upstream set any of these; ours must start with all of them set.
// The values are templates: {name} is filled from the test's context (ports, files).

export interface UpstreamFlag {
  name: string;
  value: string;
}

const flag = (name: string, value: string): UpstreamFlag => ({ name, value });

/** klog.InitFlags (klog v2.130), names normalised to dashes as upstream's main() does. */
export const upstreamKlogFlags: UpstreamFlag[] = [
  flag('v', '2'),
  flag('logtostderr', 'true'),
  flag('alsologtostderr', 'false'),
  flag('log-dir', ''),
  flag('log-file', ''),
  flag('log-file-max-size', '1800'),
  flag('add-dir-header', 'false'),
  flag('skip-headers', 'false'),
  flag('skip-log-headers', 'false'),
  flag('one-output', 'false'),
  flag('stderrthreshold', '2'),
  flag('vmodule', ''),
  flag('log-backtrace-at', ''),
  flag('legacy-stderr-threshold-behavior', 'true'),
];

export const upstreamAgentFlags: UpstreamFlag[] = [
  flag('agent-cert', '{agentCert}'),
  flag('agent-key', '{agentKey}'),
  flag('ca-cert', '{ca}'),
  flag('proxy-server-host', '127.0.0.1'),
  flag('proxy-server-port', '{agentPort}'),
  flag('alpn-proto', 'konnectivity'),
  flag('health-server-host', '127.0.0.1'),
  flag('health-server-port', '0'),
  flag('admin-server-port', '0'),
  flag('admin-bind-address', '127.0.0.1'),
  flag('enable-profiling', 'true'),
  flag('enable-contention-profiling', 'true'),
  flag('agent-id', 'upstream-flags-agent'),
  flag('sync-interval', '100ms'),
  flag('probe-interval', '1s'),
  flag('sync-interval-cap', '1s'),
  flag('keepalive-time', '1h'),
  flag('service-account-token-path', '{tokenFile}'),
  flag('agent-identifiers', 'host=node-1&ipv4=127.0.0.1'),
  flag('warn-on-channel-limit', 'true'),
  flag('sync-forever', 'true'),
  flag('xfr-channel-size', '150'),
  flag('count-server-leases', 'true'),
  flag('lease-namespace', 'kube-system'),
  flag('lease-label', 'k8s-app=konnectivity-server'),
  flag('server-count-source', 'max'),
  flag('kubeconfig', '{kubeconfig}'),
  flag('kube-api-content-type', 'application/vnd.kubernetes.protobuf'),
  ...upstreamKlogFlags,
];

export const upstreamServerFlags: UpstreamFlag[] = [
  flag('server-cert', ''),
  flag('server-key', ''),
  flag('server-ca-cert', ''),
  flag('cluster-cert', '{serverCert}'),
  flag('cluster-key', '{serverKey}'),
  flag('cluster-ca-cert', '{ca}'),
  flag('mode', 'grpc'),
  flag('uds-name', '{uds}'),
  flag('delete-existing-uds-file', 'true'),
  flag('server-port', '0'),
  flag('server-bind-address', '127.0.0.1'),
  flag('agent-port', '0'),
  flag('agent-bind-address', '127.0.0.1'),
  flag('admin-port', '0'),
  flag('admin-bind-address', '127.0.0.1'),
  flag('health-port', '0'),
  flag('health-bind-address', '127.0.0.1'),
  flag('keepalive-time', '1h'),
  flag('frontend-keepalive-time', '1h'),
  flag('enable-profiling', 'true'),
  flag('enable-contention-profiling', 'true'),
  flag('server-id', 'upstream-flags-server'),
  flag('server-count', '1'),
  flag('agent-namespace', 'kube-system'),
  flag('agent-service-account', 'konnectivity-agent'),
  flag('kubeconfig', '{kubeconfig}'),
  flag('kubeconfig-qps', '50'),
  flag('kubeconfig-burst', '100'),
  flag('kube-api-content-type', 'application/vnd.kubernetes.protobuf'),
  flag('authentication-audience', 'system:konnectivity-server'),
  flag('proxy-strategies', 'destHost,default'),
  flag('cipher-suites', 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'),
  flag('xfr-channel-size', '10'),
  flag('enable-lease-controller', 'true'),
  flag('lease-namespace', 'kube-system'),
  flag('lease-label', 'k8s-app=konnectivity-server'),
  flag('warn-on-channel-limit', 'true'),
  ...upstreamKlogFlags,
];

/** `--name=value` for every flag, with {placeholders} filled from `context`. */
export function upstreamArgs(flags: UpstreamFlag[], context: Record<string, string | number>): string[] {
  return flags.map(({ name, value }) => {
    const filled = value.replace(/\{(\w+)\}/g, (_, key: string) => {
      const v = context[key];
      if (v === undefined) throw new Error(`no value for {${key}} (flag --${name})`);
      return String(v);
    });
    return `--${name}=${filled}`;
  });
}
