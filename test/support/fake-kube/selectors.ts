// Label and field selectors with the real API's syntax and meaning: `=`, `==`, `!=`, `in`,
// `notin`, `key` (exists), `!key`, and `>`/`<` on integers for labels; `=`, `==`, `!=` on
// metadata.name, metadata.namespace and each resource's selectable fields. A selector that
// does not parse is a 400 BadRequest, as upstream.
import { errors } from './api-error.js';
import { isObject } from './json.js';

export type Selector = (obj: unknown) => boolean;

const KEY = String.raw`(?:[A-Za-z0-9][-A-Za-z0-9_.]*\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?`;
const VALUE = String.raw`(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const EXISTS = new RegExp(`^(${KEY})$`);
const NOT_EXISTS = new RegExp(String.raw`^!\s*(${KEY})$`);
const SET = new RegExp(String.raw`^(${KEY})\s+(in|notin)\s*\(([^()]*)\)$`);
const COMPARE = new RegExp(String.raw`^(${KEY})\s*(==|!=|=|>|<)\s*(${VALUE})$`);
const VALUE_ONLY = new RegExp(`^${VALUE}$`);

const always: Selector = () => true;

/** Splits on commas outside parentheses ("a in (x,y),b" is two terms). */
function terms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out.map((t) => t.trim());
}

function labelsOf(obj: unknown): Record<string, unknown> {
  const meta = isObject(obj) ? obj.metadata : undefined;
  const labels = isObject(meta) ? meta.labels : undefined;
  return isObject(labels) ? labels : {};
}

function requirement(term: string): Selector {
  let m = NOT_EXISTS.exec(term);
  if (m) {
    const key = m[1] ?? '';
    return (o) => !(key in labelsOf(o));
  }
  m = EXISTS.exec(term);
  if (m) {
    const key = m[1] ?? '';
    return (o) => key in labelsOf(o);
  }
  m = SET.exec(term);
  if (m) {
    const [, key = '', op, list = ''] = m;
    const values = list.split(',').map((v) => v.trim());
    if (values.some((v) => !VALUE_ONLY.test(v)) || list.trim() === '') {
      throw errors.badRequest(
        `unable to parse requirement: values of "${term}" must be a non-empty list of label values`,
      );
    }
    const set = new Set(values);
    if (op === 'in') {
      return (o) => {
        const v = labelsOf(o)[key];
        return typeof v === 'string' && set.has(v);
      };
    }
    return (o) => {
      const v = labelsOf(o)[key];
      return typeof v !== 'string' || !set.has(v);
    };
  }
  m = COMPARE.exec(term);
  if (m) {
    const [, key = '', op, value = ''] = m;
    if (op === '>' || op === '<') {
      const bound = Number(value);
      if (!/^-?\d+$/.test(value)) {
        throw errors.badRequest(
          `unable to parse requirement: for 'gt', 'lt' operators, the value must be an integer: "${term}"`,
        );
      }
      return (o) => {
        const v = labelsOf(o)[key];
        if (typeof v !== 'string' || !/^-?\d+$/.test(v)) return false;
        return op === '>' ? Number(v) > bound : Number(v) < bound;
      };
    }
    if (op === '!=') return (o) => labelsOf(o)[key] !== value;
    return (o) => labelsOf(o)[key] === value;
  }
  throw errors.badRequest(`unable to parse requirement: "${term}" is not a label selector requirement`);
}

export function parseLabelSelector(text: string | null): Selector {
  if (!text?.trim()) return always;
  const reqs = terms(text).map(requirement);
  return (o) => reqs.every((r) => r(o));
}

function fieldValue(obj: unknown, path: string): string {
  let cur: unknown = obj;
  for (const part of path.split('.')) cur = isObject(cur) ? cur[part] : undefined;
  if (cur === undefined || cur === null) return '';
  return typeof cur === 'string' ? cur : JSON.stringify(cur);
}

/** `selectable`: the fields this resource accepts beyond metadata.name and metadata.namespace. */
export function parseFieldSelector(text: string | null, selectable: readonly string[] = []): Selector {
  if (!text?.trim()) return always;
  const allowed = new Set(['metadata.name', 'metadata.namespace', ...selectable]);
  const reqs = terms(text).map((term): Selector => {
    const m = /^([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)$/.exec(term);
    if (!m) throw errors.badRequest(`invalid field selector: "${term}" is not field=value or field!=value`);
    const [, field = '', op, value = ''] = m;
    if (!allowed.has(field)) throw errors.badRequest(`field label not supported: ${field}`);
    return op === '!=' ? (o) => fieldValue(o, field) !== value : (o) => fieldValue(o, field) === value;
  });
  return (o) => reqs.every((r) => r(o));
}
