// Upstream flags that both binaries accept for compatibility and that mean nothing here.
import type { FlagTable } from './flag-set.js';

export const profilingFlags = {
  'enable-profiling': { kind: 'bool', default: false, help: '', notImplemented: 'use node --cpu-prof' },
  'enable-contention-profiling': {
    kind: 'bool',
    default: false,
    help: '',
    notImplemented: 'no lock contention in Node',
  },
} satisfies FlagTable;
