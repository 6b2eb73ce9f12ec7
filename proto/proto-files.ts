// Locates the .proto files at run time, from source (tsx) or from dist/, by walking up
// from this module to the package root.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function protoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto', 'client.proto'))) {
      return join(dir, 'proto');
    }
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error('cannot find proto/client.proto above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}
