// deploy/monitoring: the PodMonitors scrape ports that serve /metrics on a reachable address,
// and every metric and label the alerts and the dashboard query is one the binaries export.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { AgentMetrics } from '../../agent/metrics.js';
import { CcmMetrics } from '../../ccm-integration/ccm/runtime/metrics.js';
import { parseFlags } from '../../common/flags/flag-set.js';
import { createRegistry } from '../../common/metrics.js';
import { ServerMetrics } from '../../server/metrics.js';
import { containerEnv, expandedArgs, FLAG_TABLES } from './command-lines.js';
import {
  build,
  find,
  kubectlMissing,
  kustomizeEntryPoints,
  labelsMatch,
  ourContainers,
  ROOT,
  type BinaryName,
} from './manifests.js';

/** Every exported series name (histograms with their _bucket/_sum/_count) → its label names. */
function exportedMetrics(): Map<string, Set<string>> {
  const registries = [createRegistry(true)];
  const server = new Registry();
  new ServerMetrics(server);
  const agent = new Registry();
  new AgentMetrics(agent).trackLeaseCount(() => 0);
  registries.push(server, agent, new CcmMetrics(new Registry()).registry);
  const out = new Map<string, Set<string>>();
  for (const registry of registries) {
    for (const m of registry.getMetricsAsArray()) {
      const labels = new Set((m as unknown as { labelNames?: string[] }).labelNames ?? []);
      const names =
        m.type.toString() === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => m.name + s) : [m.name];
      if (m.type.toString() === 'histogram') labels.add('le');
      for (const n of names) out.set(n, labels);
    }
  }
  return out;
}

/** Labels every scraped series carries: Prometheus target labels, not the binary's. */
const TARGET_LABELS = new Set(['namespace', 'pod', 'job', 'instance', 'container', 'endpoint', 'service']);
const OUR_PREFIXES = /^(konnectivity_|workqueue_|leader_election_|process_|nodejs_)/;

interface Query {
  where: string;
  expr: string;
}

/** Metric names and the label names used with them ({...} matchers, by/without lists). */
function metricsIn(expr: string): { metrics: string[]; labels: string[] } {
  const text = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values and legends
    .replace(/\$\w+|\$\{\w+\}/g, '') // Grafana variables
    .replace(/\[[^\]]*\]/g, ''); // range selectors
  const metrics = [...text.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .map((m) => m[0])
    .filter((t) => OUR_PREFIXES.test(t));
  const labels: string[] = [];
  for (const m of text.matchAll(/\{([^}]*)\}/g)) {
    for (const l of (m[1] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g))
      labels.push(l[1] ?? '');
  }
  for (const m of text.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    labels.push(
      ...(m[1] ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
  }
  return { metrics, labels };
}

interface Rule {
  alert: string;
  expr: string;
  annotations: Record<string, string>;
}

function ruleQueries(): { rules: Rule[]; queries: Query[] } {
  const rule = find(build('deploy/monitoring'), 'PrometheusRule')[0];
  const groups = (rule?.spec as { groups: { rules: Rule[] }[] } | undefined)?.groups ?? [];
  const rules = groups.flatMap((g) => g.rules);
  return { rules, queries: rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })) };
}

interface Panel {
  title: string;
  targets?: { expr: string }[];
}

function dashboardQueries(): Query[] {
  const dashboard = JSON.parse(
    readFileSync(join(ROOT, 'deploy/monitoring/grafana-dashboard.json'), 'utf8'),
  ) as {
    panels: Panel[];
    templating: { list: { name: string; definition?: string }[] };
  };
  const out: Query[] = [];
  for (const p of dashboard.panels)
    for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}"`, expr: t.expr });
  for (const v of dashboard.templating.list)
    if (v.definition) out.push({ where: `variable ${v.name}`, expr: v.definition });
  return out;
}

const skip = kubectlMissing ?? false;

describe('deploy/monitoring', { skip }, () => {
  const exported = exportedMetrics();

  it('queries only metrics the binaries export, with labels they carry', () => {
    const problems: string[] = [];
    const queries = [...ruleQueries().queries, ...dashboardQueries()];
    assert.ok(queries.length > 20, 'alerts and panels were read');
    for (const q of queries) {
      const { metrics, labels } = metricsIn(q.expr);
      assert.ok(metrics.length > 0, `${q.where}: no metric of ours in ${q.expr}`);
      for (const m of metrics) if (!exported.has(m)) problems.push(`${q.where}: ${m} is not exported`);
      const known = new Set([...TARGET_LABELS, ...metrics.flatMap((m) => [...(exported.get(m) ?? [])])]);
      for (const l of labels)
        if (!known.has(l)) problems.push(`${q.where}: label ${l} is on none of ${metrics.join(', ')}`);
    }
    assert.deepEqual(problems, []);
  });

  it('alerts on pending dials at 80% of the servers’ --max-pending-dials', () => {
    const rule = ruleQueries().rules.find((r) => r.alert === 'KonnectivityPendingDialsNearLimit');
    assert.ok(rule);
    const threshold = Number(/>\s*([\d.]+)\s*$/.exec(rule.expr.trim())?.[1]);
    for (const entry of ['deploy/server/static-pod', 'deploy/server/deployment']) {
      const objects = build(entry);
      for (const rc of ourContainers(objects).filter((c) => c.binary === 'proxy-server')) {
        const { args } = expandedArgs(rc, containerEnv(rc, objects).env);
        const limit = parseFlags(FLAG_TABLES['proxy-server'], args).values['max-pending-dials'] as number;
        assert.equal(
          threshold,
          Math.floor(limit * 0.8),
          `${entry}: threshold vs --max-pending-dials ${limit}`,
        );
      }
    }
  });

  it('gives every alert a severity, a runbook and a section of docs/troubleshooting.md that exists', () => {
    const troubleshooting = readFileSync(join(ROOT, 'docs/troubleshooting.md'), 'utf8');
    const anchors = new Set(
      [...troubleshooting.matchAll(/^#+ (.+)$/gm)].map((m) =>
        (m[1] ?? '')
          .toLowerCase()
          .replace(/[^a-z0-9 -]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    for (const rule of ruleQueries().rules) {
      assert.ok(rule.annotations.runbook && rule.annotations.summary, `${rule.alert}: summary and runbook`);
      const anchor = /^docs\/troubleshooting\.md#(.+)$/.exec(rule.annotations.docs ?? '')?.[1];
      assert.ok(
        anchor && anchors.has(anchor),
        `${rule.alert}: docs ${rule.annotations.docs ?? '(none)'} is no heading`,
      );
    }
  });

  it('scrapes ports that serve /metrics, on addresses Prometheus reaches, of pods the builds run', () => {
    const metricsFlags: Record<BinaryName, [port: string, bind: string][]> = {
      'proxy-server': [['admin-port', 'admin-bind-address']],
      'proxy-agent': [
        ['health-server-port', 'health-server-host'],
        ['admin-server-port', 'admin-bind-address'],
      ],
      'konnectivity-ccm': [['secure-port', 'bind-address']],
    };
    const monitors = find(build('deploy/monitoring'), 'PodMonitor');
    assert.equal(monitors.length, 3);
    const scraped = new Set<BinaryName>();
    for (const entry of kustomizeEntryPoints()) {
      const objects = build(entry);
      for (const rc of ourContainers(objects)) {
        const values = parseFlags(
          FLAG_TABLES[rc.binary],
          expandedArgs(rc, containerEnv(rc, objects).env).args,
        ).values;
        for (const monitor of monitors) {
          const spec = monitor.spec as {
            selector: { matchLabels: Record<string, string> };
            namespaceSelector: { matchNames: string[] };
            podMetricsEndpoints: { port: string; path: string }[];
          };
          if (!labelsMatch(spec.selector.matchLabels, rc.workload.podLabels)) continue;
          assert.ok(spec.namespaceSelector.matchNames.includes(rc.workload.namespace), monitor.metadata.name);
          for (const endpoint of spec.podMetricsEndpoints) {
            assert.equal(endpoint.path, '/metrics');
            const port = rc.container.ports?.find((p) => p.name === endpoint.port);
            // A pod without the named port is not scraped (the static pod keeps metrics on loopback).
            if (!port) continue;
            const pair = metricsFlags[rc.binary].find(([p]) => values[p] === port.containerPort);
            assert.ok(pair, `${entry} ${rc.workload.name}: port ${endpoint.port} does not serve /metrics`);
            const bind = String(values[pair[1]]);
            assert.ok(
              !/^127\.|^localhost$|^::1$/.test(bind),
              `${entry} ${rc.workload.name}: --${pair[1]}=${bind}`,
            );
            scraped.add(rc.binary);
          }
        }
      }
    }
    assert.deepEqual([...scraped].sort(), ['konnectivity-ccm', 'proxy-agent', 'proxy-server']);
  });
});
