// deploy/: every kustomize entry point builds, every object is valid Kubernetes (OpenAPI
// schemas, no unknown fields), and every container of ours has a command line our binaries
// accept. Skipped with the reason when kubectl is not on the PATH.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testPki } from '../support/pki.js';
import { commandLineProblems, containerEnv, expandedArgs, materialize, rootedArgs } from './command-lines.js';
import { build, DEPLOY, kubectlMissing, kustomizeEntryPoints, ourContainers } from './manifests.js';
import { schemaErrors, unknownFields } from './schema.js';

const entryPoints = kustomizeEntryPoints();
const skip = kubectlMissing ?? false;

describe('deploy/ kustomize entry points', { skip }, () => {
  after(async () => {
    (await testPki()).cleanup();
  });
  it('has the entry points the docs name', () => {
    for (const expected of [
      'deploy/server/static-pod',
      'deploy/server/static-pod/cluster',
      'deploy/server/rbac',
      'deploy/server/deployment',
      'deploy/agent',
      'deploy/agent/ha',
      'deploy/ccm',
      'deploy/monitoring',
      'deploy/kubeadm',
    ]) {
      assert.ok(entryPoints.includes(expected), `${expected} has no kustomization.yaml`);
    }
  });

  it('lists every entry point in deploy/README.md', () => {
    const readme = readFileSync(join(DEPLOY, 'README.md'), 'utf8');
    for (const entry of entryPoints) {
      assert.ok(readme.includes(`\`${entry}\``), `deploy/README.md does not mention \`${entry}\``);
    }
  });

  for (const entry of entryPoints) {
    describe(entry, () => {
      it('builds with kubectl kustomize', () => {
        assert.ok(build(entry).length > 0, `${entry} built no object`);
      });

      it('validates against the Kubernetes OpenAPI schemas, with no unknown field', async () => {
        const problems: string[] = [];
        for (const object of build(entry)) {
          const what = `${object.kind} ${object.metadata.name}`;
          for (const e of schemaErrors(object)) problems.push(`${what}: ${e}`);
          for (const f of (await unknownFields(object)) ?? []) problems.push(`${what}: unknown field ${f}`);
        }
        assert.deepEqual(problems, []);
      });

      it('gives each of our containers a command line its binary accepts', async (t) => {
        const { pki } = await testPki();
        const root = mkdtempSync(join(tmpdir(), 'knp-deploy-args-'));
        t.after(() => {
          rmSync(root, { recursive: true, force: true });
        });
        const objects = build(entry);
        const problems: string[] = [];
        for (const rc of ourContainers(objects)) {
          const where = `${rc.workload.kind} ${rc.workload.name} container ${rc.container.name} (${rc.binary})`;
          const { env, problems: envProblems } = containerEnv(rc, objects);
          const { args, problems: argProblems } = expandedArgs(rc, env);
          const rooted = rootedArgs(args, root);
          materialize(args, root, { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key });
          for (const p of [...envProblems, ...argProblems, ...commandLineProblems(rc.binary, rooted)]) {
            problems.push(`${where}: ${p}`);
          }
        }
        assert.deepEqual(problems, []);
      });
    });
  }

  it('leaves no placeholder in a command line or env value', () => {
    // A placeholder an operator must replace builds fine and fails in the cluster.
    for (const entry of entryPoints) {
      for (const rc of ourContainers(build(entry))) {
        const text = JSON.stringify([rc.container.args, rc.container.env]);
        assert.doesNotMatch(
          text,
          /example\.com|CHANGE[-_ ]?ME|TODO|<[a-z-]+>/i,
          `${entry} ${rc.workload.name}`,
        );
      }
    }
  });
});
