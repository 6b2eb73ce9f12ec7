// Loads ../shared/wire-vectors.json: packets encoded by the upstream Go implementation. The
// file lives beside the repository (in the workplace's shared/ folder), not in it: a clone
// without it skips the tests that need it, saying why, instead of failing.
import { readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface WireVector {
  name: string;
  packet: Record<string, unknown>;
  hex: string;
}

/** The path of shared/wire-vectors.json beside the repository, or undefined when absent. */
export function findWireVectors(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, '..', 'shared', 'wire-vectors.json');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Why wire-vector tests cannot run here, or undefined when the file is found. */
export const wireVectorsMissing: string | undefined =
  findWireVectors() === undefined
    ? 'shared/wire-vectors.json (upstream Go encodings) is not beside this checkout'
    : undefined;

export function loadWireVectors(): WireVector[] {
  const path = findWireVectors();
  if (path === undefined) throw new Error('shared/wire-vectors.json not found beside the repository');
  return JSON.parse(readFileSync(path, 'utf8')) as WireVector[];
}
