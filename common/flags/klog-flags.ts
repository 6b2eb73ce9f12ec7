// The klog/component-base logging flags every Kubernetes binary accepts. Manifests pass them
// (--logtostderr, --v=2, ...), so they must parse; -v sets our log level, the rest are no-ops.
import type { FlagTable } from './flag-set.js';

const noEffect = 'logs are JSON lines on stdout';

export const klogFlags = {
  v: { kind: 'int', default: 0, shorthand: 'v', help: 'log verbosity: 0-1 info, 2-4 debug, 5+ trace' },
  logtostderr: { kind: 'bool', default: true, help: '', notImplemented: noEffect },
  alsologtostderr: { kind: 'bool', default: false, help: '', notImplemented: noEffect },
  'log-dir': { kind: 'string', default: '', help: '', notImplemented: noEffect },
  'log-file': { kind: 'string', default: '', help: '', notImplemented: noEffect },
  'log-file-max-size': { kind: 'int', default: 1800, help: '', notImplemented: noEffect },
  'log-flush-frequency': { kind: 'duration', default: 5000, help: '', notImplemented: noEffect },
  'one-output': { kind: 'bool', default: false, help: '', notImplemented: noEffect },
  'skip-headers': { kind: 'bool', default: false, help: '', notImplemented: noEffect },
  'skip-log-headers': { kind: 'bool', default: false, help: '', notImplemented: noEffect },
  'add-dir-header': { kind: 'bool', default: false, help: '', notImplemented: noEffect },
  stderrthreshold: { kind: 'string', default: '2', help: '', notImplemented: noEffect },
  vmodule: { kind: 'string', default: '', help: '', notImplemented: noEffect },
  'log-backtrace-at': { kind: 'string', default: '', help: '', notImplemented: noEffect },
  'legacy-stderr-threshold-behavior': { kind: 'bool', default: true, help: '', notImplemented: noEffect },
  'log-format': { kind: 'string', default: 'json', help: '', notImplemented: noEffect },
} satisfies FlagTable;
