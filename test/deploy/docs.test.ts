// docs/ and deploy/README.md: every relative link reaches a file and, with #anchor, a heading
// of it; every metric the binaries export is in docs/metrics.md.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { Registry } from 'prom-client';
import { AgentMetrics } from '../../agent/metrics.js';
import { CcmMetrics } from '../../ccm-integration/ccm/runtime/metrics.js';
import { ServerMetrics } from '../../server/metrics.js';
import { ROOT } from './manifests.js';

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
function anchorsOf(markdown: string): Set<string> {
  return new Set(
    [...markdown.matchAll(/^#{1,6} (.+)$/gm)].map((m) =>
      (m[1] ?? '')
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, '')
        .replace(/ /g, '-'),
    ),
  );
}

const pages = [
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => join(ROOT, 'docs', f)),
  join(ROOT, 'deploy', 'README.md'),
];

describe('docs', () => {
  it('links only to files and headings that exist', () => {
    const problems: string[] = [];
    for (const page of pages) {
      const text = readFileSync(page, 'utf8');
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1] ?? '';
        if (/^[a-z]+:/.test(link)) continue;
        const [file = '', anchor] = link.split('#');
        const target = file === '' ? page : join(dirname(page), file);
        const where = `${relative(ROOT, page)}: ${link}`;
        if (!existsSync(target)) {
          problems.push(`${where}: no such file`);
          continue;
        }
        if (anchor && !anchorsOf(readFileSync(target, 'utf8')).has(anchor)) {
          problems.push(`${where}: no such heading`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  it('documents every metric the server, the agent and the CCM export', () => {
    const metricsDoc = readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');
    const server = new Registry();
    new ServerMetrics(server);
    const agent = new Registry();
    new AgentMetrics(agent).trackLeaseCount(() => 0);
    const names = [server, agent, new CcmMetrics(new Registry()).registry]
      .flatMap((r) => r.getMetricsAsArray().map((m) => m.name))
      .filter((n) => !/^(process_|nodejs_)/.test(n));
    assert.ok(names.length > 30);
    const missing = names.filter((n) => !metricsDoc.includes(`\`${n}\``));
    assert.deepEqual(missing, [], 'exported but not in docs/metrics.md');
  });
});
