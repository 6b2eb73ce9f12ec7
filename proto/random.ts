// Dial ids: non-negative 63-bit randoms, as the Go implementation draws them.
import { randomBytes } from 'node:crypto';

export function random63(): bigint {
  return randomBytes(8).readBigUInt64BE() & 0x7fffffffffffffffn;
}
