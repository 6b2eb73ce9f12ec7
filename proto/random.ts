// Dial ids: non-negative 63-bit randoms, as the Go implementation draws them.
import { randomBytes } from 'node:crypto';

/** Random bytes are drawn 4 KiB at a time (512 ids): one call per dial cost 10-20 µs. */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let offset = POOL_BYTES;

export function random63(): bigint {
  if (offset + 8 > pool.length) {
    pool = randomBytes(POOL_BYTES);
    offset = 0;
  }
  const id = pool.readBigUInt64BE(offset) & 0x7fffffffffffffffn;
  offset += 8;
  return id;
}
