import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseGoDuration, formatGoDuration } from '../../../common/flags/go-duration.js';
import { FlagError, parseFlags } from '../../../common/flags/flag-set.js';
import { serverConfigFromFlags, serverFlags } from '../../../server/options.js';
import { agentConfigFromFlags, agentFlags } from '../../../agent/options.js';
import { createLogger } from '../../../common/log.js';
import { upstreamAgentFlags, upstreamArgs, upstreamServerFlags } from '../../support/upstream-flags.js';
import { testPki } from '../../support/pki.js';
import { serverConfigWith } from '../../support/server-config.js';

const quiet = createLogger({ component: 'test', level: 'silent' });

// Every flag DESIGN.md names, with a value of its kind.
const SERVER_FLAGS = [
  '--mode=grpc',
  '--uds-name=/tmp/x.sock',
  '--delete-existing-uds-file=true',
  '--server-port=0',
  '--server-bind-address=127.0.0.1',
  '--server-cert=a',
  '--server-key=b',
  '--server-ca-cert=c',
  '--agent-port=8091',
  '--agent-bind-address=0.0.0.0',
  '--cluster-cert=d',
  '--cluster-key=e',
  '--cluster-ca-cert=f',
  '--health-port=8092',
  '--health-bind-address=0.0.0.0',
  '--admin-port=8095',
  '--admin-bind-address=127.0.0.1',
  '--server-id=s1',
  '--server-count=3',
  '--proxy-strategies=destHost,default',
  '--agent-namespace=kube-system',
  '--agent-service-account=konnectivity-agent',
  '--authentication-audience=system:konnectivity-server',
  '--kubeconfig=/etc/kubeconfig',
  '--keepalive-time=1h',
  '--frontend-keepalive-time=30s',
  '--backend-dial-timeout=5s',
  '--graceful-shutdown-timeout=15s',
  '--tls-min-version=VersionTLS13',
  '--cipher-suites=TLS_AES_128_GCM_SHA256',
  '--enable-lease-controller',
  '--lease-namespace=kube-system',
  '--lease-label=k8s-app=konnectivity-server',
  '-v=2',
  '--logtostderr=true',
];
const AGENT_FLAGS = [
  '--proxy-server-host=konnectivity-server',
  '--proxy-server-port=8091',
  '--ca-cert=a',
  '--agent-cert=b',
  '--agent-key=c',
  '--agent-id=node-1',
  '--agent-identifiers=host=node1&ipv4=10.0.0.5',
  '--health-server-host=0.0.0.0',
  '--health-server-port=8093',
  '--admin-server-port=8094',
  '--admin-bind-address=127.0.0.1',
  '--service-account-token-path=/var/run/secrets/tokens/konnectivity-agent-token',
  '--sync-interval=1s',
  '--sync-interval-cap=10s',
  '--probe-interval=1s',
  '--sync-forever',
  '--keepalive-time=1h',
  '--alpn-proto=konnectivity',
  '--count-server-leases',
  '--lease-namespace=kube-system',
  '--lease-label-selector=k8s-app=konnectivity-server',
  '--kubeconfig=/etc/kubeconfig',
  '--v=3',
  '--logtostderr',
];

describe('Go durations', () => {
  it('parse as Go parses them', () => {
    assert.equal(parseGoDuration('30s'), 30_000);
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('1h'), 3_600_000);
    assert.equal(parseGoDuration('500ms'), 500);
    assert.equal(parseGoDuration('1.5s'), 1500);
    assert.equal(parseGoDuration('0'), 0);
    assert.equal(parseGoDuration('250us'), 0.25);
    assert.throws(() => parseGoDuration('10'), /invalid duration/);
    assert.throws(() => parseGoDuration('1d'), /invalid duration/);
  });
  it('print as Go prints them', () => {
    assert.equal(formatGoDuration(3_600_000), '1h0m0s');
    assert.equal(formatGoDuration(90_000), '1m30s');
    assert.equal(formatGoDuration(500), '500ms');
  });
});

describe('command lines', () => {
  it('the server parses every flag of DESIGN.md, in both --flag=value and --flag value forms', () => {
    const r = parseFlags(serverFlags, SERVER_FLAGS);
    assert.equal(r.values['server-count'], 3);
    assert.equal(r.values['keepalive-time'], 3_600_000);
    assert.equal(r.values.v, 2);
    assert.equal(r.values['enable-lease-controller'], true);
    const spaced = parseFlags(serverFlags, [
      '--mode',
      'http-connect',
      '-v',
      '4',
      '--delete-existing-uds-file=false',
    ]);
    assert.equal(spaced.values.mode, 'http-connect');
    assert.equal(spaced.values.v, 4);
    assert.equal(spaced.values['delete-existing-uds-file'], false);
  });

  it('the agent parses every flag of DESIGN.md', () => {
    const r = parseFlags(agentFlags, AGENT_FLAGS);
    assert.equal(r.values['agent-identifiers'], 'host=node1&ipv4=10.0.0.5');
    assert.equal(r.values['sync-interval-cap'], 10_000);
    assert.deepEqual(r.values['alpn-proto'], ['konnectivity']);
    assert.equal(r.values.v, 3);
  });

  it('accepts an upstream flag we do not implement yet with a warning, and refuses unknown flags', () => {
    const r = parseFlags(agentFlags, ['--alpn-proto=konnectivity', '--xfr-channel-size=150']);
    assert.equal(r.warnings.length, 1, '--alpn-proto takes effect: no warning');
    assert.match(r.warnings[0] ?? '', /--xfr-channel-size is accepted for compatibility but has no effect/);
    assert.throws(() => parseFlags(serverFlags, ['--no-such-flag=1']), FlagError);
    assert.throws(() => parseFlags(serverFlags, ['--server-port=abc']), /expected an integer/);
    assert.throws(() => parseFlags(serverFlags, ['--keepalive-time=5']), /invalid duration/);
  });

  it('validates the server configuration with upstream messages', () => {
    const cfg = (args: string[]) => {
      const r = parseFlags(serverFlags, args);
      return serverConfigFromFlags(r.values, r.set, quiet, {});
    };
    assert.throws(() => cfg(['--mode=socks']), /mode must be set to either 'grpc' or 'http-connect'/);
    assert.throws(() => cfg([]), /server ca cert must be set when in TCP mode/);
    assert.throws(() => cfg(['--uds-name=/tmp/s', '--server-port=8090']), /server port should be set to 0/);
    assert.throws(
      () => cfg(['--uds-name=/tmp/s', '--proxy-strategies=nearest']),
      /unknown strategy "nearest"/,
    );
    assert.throws(() => cfg(['--uds-name=/tmp/s']), /the agent port needs TLS/);
    assert.throws(
      () => cfg(['--uds-name=/tmp/s', '--agent-namespace=x']),
      /--agent-service-account cannot be empty when agent token authentication is configured/,
    );
  });

  it('reads the agent TLS ticket secret file, refusing a missing or short one by name', async () => {
    const { files, dir } = await testPki();
    const cfg = (args: string[]) => serverConfigWith(files, args);
    assert.equal(cfg([]).agentTicketSecret, undefined, 'none by default: Node keeps its own');
    const good = join(dir, 'ticket-secret');
    writeFileSync(good, Buffer.alloc(48, 7));
    assert.deepEqual(cfg([`--agent-tls-ticket-key-file=${good}`]).agentTicketSecret, Buffer.alloc(48, 7));
    const short = join(dir, 'ticket-password');
    writeFileSync(short, 'hunter2');
    assert.throws(
      () => cfg([`--agent-tls-ticket-key-file=${short}`]),
      /--agent-tls-ticket-key-file: ".*ticket-password" holds 7 bytes; it needs at least 32 random bytes/,
    );
    assert.throws(
      () => cfg([`--agent-tls-ticket-key-file=${join(dir, 'absent')}`]),
      /--agent-tls-ticket-key-file: cannot read ".*absent": ENOENT/,
    );
  });

  it('validates the agent configuration: identifiers, destinations, lease selector', () => {
    const cfg = (args: string[]) => agentConfigFromFlags(parseFlags(agentFlags, args).values, quiet, {});
    assert.throws(
      () => cfg(['--agent-identifiers=ipv4=999.1.1.1&host=node1']),
      /invalid "ipv4=999\.1\.1\.1"/,
    );
    assert.throws(() => cfg(['--agent-identifiers=cidr=10.0.0.0/40']), /invalid "cidr=10\.0\.0\.0\/40"/);
    assert.throws(() => cfg(['--agent-identifiers=default-route=maybe']), /default-route=maybe/);
    assert.equal(cfg(['--agent-identifiers=zone=a&ipv4=10.0.0.1']).agentIdentifiers, 'zone=a&ipv4=10.0.0.1');
    assert.throws(
      () => cfg(['--denied-destinations=10.0.0.0/8:http']),
      /--denied-destinations: "10\.0\.0\.0\/8:http"/,
    );
    assert.throws(
      () => cfg(['--count-server-leases', '--lease-label-selector=k8s-app in (a)']),
      /--lease-label-selector/,
    );
    assert.throws(() => cfg(['--drain-timeout=-1s']), /--drain-timeout must be >= 0/);
  });

  it('takes the upstream agent flags: --lease-label (alias --lease-label-selector), --server-count-source', () => {
    const cfg = (args: string[]) => agentConfigFromFlags(parseFlags(agentFlags, args).values, quiet, {});
    const selector = (args: string[]) => cfg(['--count-server-leases', ...args]).leaseCounting?.labelSelector;
    assert.equal(selector([]), 'k8s-app=konnectivity-server');
    assert.equal(selector(['--lease-label=app=knp']), 'app=knp');
    assert.equal(selector(['--lease-label-selector=app=ours']), 'app=ours');
    assert.equal(selector(['--lease-label=app=same', '--lease-label-selector=app=same']), 'app=same');
    assert.throws(
      () => selector(['--lease-label=a=1', '--lease-label-selector=a=2']),
      /disagree: set one of them/,
    );
    assert.throws(() => selector(['--lease-label=k8s-app in (a)']), /^FlagError: --lease-label: /);
    assert.equal(cfg([]).serverCountSource, 'default');
    assert.equal(cfg(['--server-count-source=']).serverCountSource, 'default');
    assert.equal(cfg(['--server-count-source=max']).serverCountSource, 'max');
    assert.throws(
      () => cfg(['--server-count-source=min']),
      /--server-count-source must be one of '', 'default', 'max', got min/,
    );
    assert.throws(() => cfg(['--drain-idle-grace=-1s']), /--drain-idle-grace must be >= 0/);
  });

  it('parses every flag upstream v0.33 defines, on both binaries', () => {
    const context = {
      agentCert: 'a',
      agentKey: 'b',
      ca: 'c',
      agentPort: 8091,
      tokenFile: 't',
      kubeconfig: 'k',
      serverCert: 's',
      serverKey: 'sk',
      uds: '/tmp/u.sock',
    };
    for (const [table, flags] of [
      [agentFlags, upstreamAgentFlags],
      [serverFlags, upstreamServerFlags],
    ] as const) {
      const parsed = parseFlags(table, upstreamArgs(flags, context));
      assert.equal(parsed.set.size, flags.length, 'each flag set once, none unknown');
    }
  });
});
