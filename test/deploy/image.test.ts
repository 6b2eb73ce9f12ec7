// The Dockerfile cannot be built on these machines (no registry is reachable), so what can be
// checked without building it is checked here: what it copies exists and is in the build
// context, the compiled code it ships is all the binaries import, and the programs it names are
// the package's bins.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { ROOT } from './manifests.js';

interface Instruction {
  stage: string;
  op: string;
  args: string;
}

/** The Dockerfile's instructions (continuation lines joined), with the stage each is in. */
function dockerfile(): Instruction[] {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const out: Instruction[] = [];
  let stage = '';
  for (const line of text.split('\n')) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line.trim());
    if (!m?.[1] || m[2] === undefined) continue;
    if (m[1] === 'FROM') stage = /\sAS\s+(\S+)/i.exec(m[2])?.[1] ?? '';
    out.push({ stage, op: m[1], args: m[2] });
  }
  return out;
}

function dockerignore(): RegExp[] {
  return readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((p) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}(/|$)`));
}

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  engines: { node: string };
};
const PROGRAMS = ['proxy-server', 'proxy-agent', 'konnectivity-ccm'];

/** Top-level folders of dist/ that a compiled module imports, transitively. */
function importedDistFolders(entry: string): Set<string> {
  const dist = join(ROOT, 'dist');
  const seen = new Set<string>();
  const folders = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    folders.add(relative(dist, file).split('/')[0] ?? '');
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:from\s+|import\s*\(?\s*)'(\.{1,2}\/[^']+)'/g)) {
      const target = resolve(dirname(file), m[1] ?? '');
      if (existsSync(target)) visit(target);
    }
  };
  visit(join(dist, entry));
  return folders;
}

describe('Dockerfile', () => {
  const instructions = dockerfile();
  const ignored = dockerignore();

  it('copies sources that exist and that .dockerignore leaves in the build context', () => {
    const copies = instructions.filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'));
    assert.ok(copies.length > 0);
    for (const copy of copies) {
      const sources = copy.args.split(/\s+/).slice(0, -1);
      for (const source of sources) {
        const path = source.replace(/\/$/, '');
        assert.ok(existsSync(join(ROOT, path)), `COPY ${source}: not in the repository`);
        assert.ok(!ignored.some((re) => re.test(path)), `COPY ${source}: excluded by .dockerignore`);
      }
    }
  });

  it('keeps dependencies, build output and secrets of `npm start` out of the build context', () => {
    for (const path of ['node_modules', 'dist', '.git', 'run']) {
      assert.ok(
        ignored.some((re) => re.test(path)),
        `.dockerignore does not exclude ${path}`,
      );
    }
  });

  it('ships every compiled folder the three programs import, and none of the tests', () => {
    const copied = new Set(
      instructions
        .filter((i) => i.op === 'COPY' && i.args.startsWith('--from=build'))
        .map((i) => /\/src\/dist\/([^/\s]+)\//.exec(i.args)?.[1])
        .filter((f): f is string => f !== undefined),
    );
    for (const program of PROGRAMS) {
      const main = readFileSync(join(ROOT, pkg.bin[program] ?? ''), 'utf8');
      const entry = /'\.\.\/dist\/([^']+)'/.exec(main)?.[1];
      assert.ok(entry, `${program}: bin file imports no dist module`);
      for (const folder of importedDistFolders(entry)) {
        assert.ok(copied.has(folder), `${program} imports dist/${folder}/, which the image does not copy`);
        assert.ok(!['test', 'bench'].includes(folder), `${program} imports dist/${folder}/`);
      }
    }
    // What the runtime takes from dist/ must have been compiled from sources the build copied.
    const sources = new Set(
      instructions
        .filter((i) => i.stage === 'build' && i.op === 'COPY')
        .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
        .map((a) => a.replace(/\/$/, '')),
    );
    for (const folder of copied) assert.ok(sources.has(folder), `the build stage does not copy ${folder}/`);
    // The .proto files are read at run time (proto/proto-files.ts walks up to them).
    const protoCopy = instructions.find((i) => i.op === 'COPY' && i.args.includes('client.proto'));
    assert.ok(protoCopy?.args.includes('agent.proto'), 'both .proto files are copied');
  });

  it('puts each program at /<bin>, as upstream images do, and makes each target its entry point', () => {
    const run = instructions
      .filter((i) => i.op === 'RUN')
      .map((i) => i.args)
      .join(' ');
    for (const program of PROGRAMS) {
      const binFile = pkg.bin[program];
      assert.ok(binFile && existsSync(join(ROOT, binFile)), `${program} is a bin of package.json`);
      assert.ok(run.includes(`ln -s /app/${binFile} /${program}`), `/${program} links to /app/${binFile}`);
      const target = instructions.find((i) => i.op === 'ENTRYPOINT' && i.stage === program);
      assert.equal(target?.args, `["/${program}"]`, `target ${program} runs /${program}`);
    }
    const stages = instructions.filter((i) => i.op === 'FROM');
    assert.equal(
      /\sAS\s+(\S+)/i.exec(stages[stages.length - 1]?.args ?? '')?.[1],
      'proxy-server',
      'default target',
    );
  });

  it('runs on the Node major the package requires, without dev dependencies, as a numeric non-root user', () => {
    const major = /(\d+)/.exec(pkg.engines.node)?.[1];
    for (const from of instructions.filter((i) => i.op === 'FROM' && i.args.startsWith('node:'))) {
      assert.match(from.args, new RegExp(`^node:${major ?? 'x'}[-.]`), from.args);
    }
    const runtime = instructions.filter((i) => i.stage === 'runtime');
    assert.ok(runtime.some((i) => i.op === 'RUN' && /npm ci --omit=dev --ignore-scripts/.test(i.args)));
    assert.ok(instructions.some((i) => i.stage === 'build' && i.op === 'RUN' && /^npm ci\b/.test(i.args)));
    assert.ok(instructions.some((i) => i.stage === 'build' && i.op === 'RUN' && i.args === 'npm run build'));
    assert.deepEqual(
      runtime.filter((i) => i.op === 'USER').map((i) => i.args),
      ['65532:65532'],
      'the uid the manifests run as (runAsUser: 65532)',
    );
  });
});
