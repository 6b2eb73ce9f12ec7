// A small pflag-compatible command-line parser: the flag syntax of the upstream Go binaries
// (--name=value, --name value, -v=3, --bool, --bool=false, Go durations, comma lists), so
// that existing manifests and kubelet-style args work unchanged.
import { formatGoDuration, parseGoDuration } from './go-duration.js';

export type FlagKind = 'string' | 'bool' | 'int' | 'float' | 'duration' | 'stringSlice';

type ValueOf<K extends FlagKind> = K extends 'string'
  ? string
  : K extends 'bool'
    ? boolean
    : K extends 'int' | 'float' | 'duration'
      ? number
      : string[];

export interface FlagSpec<K extends FlagKind = FlagKind> {
  kind: K;
  default: ValueOf<K>;
  help: string;
  shorthand?: string;
  /** An upstream flag we accept but do not act on: a warning is logged when it is set. */
  notImplemented?: string;
}

export type FlagTable = Record<string, FlagSpec>;

export type FlagValues<T extends FlagTable> = {
  [K in keyof T]: T[K] extends FlagSpec<infer V> ? ValueOf<V> : never;
};

export class FlagError extends Error {
  override readonly name = 'FlagError';
  readonly code = 'KNP_BAD_FLAG';
}

export interface ParseResult<T extends FlagTable> {
  values: FlagValues<T>;
  /** Names of flags given explicitly on the command line. */
  set: Set<keyof T & string>;
  warnings: string[];
  help: boolean;
}

function convert(name: string, spec: FlagSpec, raw: string, previous: unknown): unknown {
  switch (spec.kind) {
    case 'string':
      return raw;
    case 'bool': {
      const v = raw.toLowerCase();
      if (['true', '1', 't'].includes(v)) return true;
      if (['false', '0', 'f'].includes(v)) return false;
      throw new FlagError(`invalid argument "${raw}" for "--${name}" flag: expected true or false`);
    }
    case 'int': {
      if (!/^[-+]?\d+$/.test(raw.trim()))
        throw new FlagError(`invalid argument "${raw}" for "--${name}" flag: expected an integer`);
      return Number.parseInt(raw, 10);
    }
    case 'float': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n))
        throw new FlagError(`invalid argument "${raw}" for "--${name}" flag: expected a number`);
      return n;
    }
    case 'duration':
      try {
        return parseGoDuration(raw);
      } catch (err) {
        throw new FlagError(`invalid argument "${raw}" for "--${name}" flag: ${(err as Error).message}`);
      }
    case 'stringSlice': {
      // pflag appends on repetition; the first explicit use replaces the default.
      const items = raw === '' ? [] : raw.split(',').map((s) => s.trim());
      return Array.isArray(previous) ? [...(previous as string[]), ...items] : items;
    }
  }
}

/** Validation shared by the binaries: a port flag (0: pick a free port). */
/**
 * Runs a flag value's parser, turning its syntax errors (instances of `syntaxError`) into a
 * FlagError, prefixed with `prefix` when the parser's message does not name the flag itself.
 */
export function parseFlagValue<T>(
  parse: () => T,
  syntaxError: abstract new (...args: never[]) => Error,
  prefix = '',
): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof syntaxError) throw new FlagError(prefix + err.message);
    throw err;
  }
}

export function checkPortFlag(name: string, port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new FlagError(`--${name} ${port} is not a port (0-65535)`);
  }
}

export function parseFlags<T extends FlagTable>(table: T, argv: readonly string[]): ParseResult<T> {
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(table)) {
    values[name] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
  }
  const short = new Map<string, string>();
  for (const [name, spec] of Object.entries(table)) if (spec.shorthand) short.set(spec.shorthand, name);

  const set = new Set<keyof T & string>();
  const warnings: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') break;
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      throw new FlagError(`unexpected argument "${arg}": this command takes flags only`);
    }
    const isLong = arg.startsWith('--');
    const body = arg.slice(isLong ? 2 : 1);
    const eq = body.indexOf('=');
    const key = eq >= 0 ? body.slice(0, eq) : body;
    // pflag: a single dash may carry a long name too (-v=2, -logtostderr).
    const name = !isLong && short.has(key) ? (short.get(key) ?? key) : key;
    const spec = table[name];
    if (!spec) throw new FlagError(`unknown flag: ${isLong ? '--' : '-'}${key}`);
    let raw: string;
    if (eq >= 0) raw = body.slice(eq + 1);
    else if (spec.kind === 'bool') raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new FlagError(`flag needs an argument: --${name}`);
      raw = next;
      i++;
    }
    values[name] = convert(name, spec, raw, set.has(name) ? values[name] : undefined);
    set.add(name);
    if (spec.notImplemented !== undefined) {
      warnings.push(`flag --${name} is accepted for compatibility but has no effect: ${spec.notImplemented}`);
    }
  }
  return { values: values as FlagValues<T>, set, warnings, help };
}

function formatDefault(spec: FlagSpec): string {
  const d = spec.default;
  if (spec.kind === 'duration') return formatGoDuration(d as number);
  if (Array.isArray(d)) return `[${d.join(',')}]`;
  if (d === '' || d === false) return '';
  return String(d);
}

export function usage(command: string, table: FlagTable): string {
  const lines = [`Usage of ${command}:`];
  for (const [name, spec] of Object.entries(table).sort(([a], [b]) => a.localeCompare(b))) {
    if (spec.notImplemented !== undefined) continue;
    const flag = spec.shorthand ? `-${spec.shorthand}, --${name}` : `    --${name}`;
    const type = spec.kind === 'bool' ? '' : ` ${spec.kind}`;
    const def = formatDefault(spec);
    lines.push(`  ${flag}${type}`);
    lines.push(`        ${spec.help}${def ? ` (default ${def})` : ''}`);
  }
  return lines.join('\n');
}
