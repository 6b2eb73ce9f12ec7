// Loads ../shared/wire-vectors.json: packets encoded by the upstream Go implementation.
import { readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface WireVector {
  name: string;
  packet: Record<string, unknown>;
  hex: string;
}

export function loadWireVectors(): WireVector[] {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, '..', 'shared', 'wire-vectors.json');
    if (existsSync(candidate)) return JSON.parse(readFileSync(candidate, 'utf8')) as WireVector[];
    const parent = dirname(dir);
    if (parent === dir) throw new Error('shared/wire-vectors.json not found beside the repository');
    dir = parent;
  }
}
