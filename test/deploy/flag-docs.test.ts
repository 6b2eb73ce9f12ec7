// docs/flags.md and docs/upstream-flags.md are generated from the flag tables: a flag added,
// renamed or re-described without regenerating them fails here.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from './manifests.js';

type Render = () => Record<string, string>;

describe('generated flag documentation', () => {
  it('matches the flag tables (regenerate: npm run build && node scripts/gen-flag-docs.mjs)', async () => {
    const script = pathToFileURL(join(ROOT, 'scripts', 'gen-flag-docs.mjs')).href;
    const { renderFlagDocs } = (await import(script)) as { renderFlagDocs: Render };
    const rendered = renderFlagDocs();
    assert.deepEqual(Object.keys(rendered).sort(), ['docs/flags.md', 'docs/upstream-flags.md']);
    for (const [path, text] of Object.entries(rendered)) {
      assert.equal(readFileSync(join(ROOT, path), 'utf8'), text, `${path} is stale`);
    }
  });
});
