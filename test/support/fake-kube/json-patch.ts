// JSON patch (RFC 6902, application/json-patch+json): add, remove, replace, move, copy and
// test, with RFC 6901 pointers. A patch that does not decode is a 400 BadRequest; one that
// does not apply (missing path, failed test) is a 422, as the real API server answers.
import { errors } from './api-error.js';
import { clone, isObject, jsonEqual } from './json.js';

interface Operation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: unknown;
}

const OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);

function decode(patch: unknown): Operation[] {
  if (!Array.isArray(patch)) throw errors.badRequest('a JSON patch must be an array of operations');
  return patch.map((op: unknown, i) => {
    if (!isObject(op) || typeof op.op !== 'string' || !OPS.has(op.op) || typeof op.path !== 'string') {
      throw errors.badRequest(
        `JSON patch operation ${i} needs "op" (one of ${[...OPS].join(', ')}) and "path"`,
      );
    }
    if ((op.op === 'move' || op.op === 'copy') && typeof op.from !== 'string') {
      throw errors.badRequest(`JSON patch operation ${i} (${op.op}) needs "from"`);
    }
    if ((op.op === 'add' || op.op === 'replace' || op.op === 'test') && !('value' in op)) {
      throw errors.badRequest(`JSON patch operation ${i} (${op.op}) needs "value"`);
    }
    return op as unknown as Operation;
  });
}

function tokens(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw errors.unprocessable(`JSON pointer "${pointer}" must start with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replaceAll('~1', '/').replaceAll('~0', '~'));
}

function arrayIndex(token: string, length: number, pointer: string, allowEnd: boolean): number {
  if (allowEnd && token === '-') return length;
  if (!/^(0|[1-9]\d*)$/.test(token))
    throw errors.unprocessable(`"${token}" in "${pointer}" is not an array index`);
  const i = Number(token);
  if (i > length || (!allowEnd && i === length))
    throw errors.unprocessable(`index ${i} of "${pointer}" is out of range`);
  return i;
}

/** The container holding the pointer's last token, and that token. */
function parentOf(doc: unknown, pointer: string): { parent: unknown; last: string } {
  const path = tokens(pointer);
  const last = path.pop();
  if (last === undefined) throw errors.unprocessable('the root has no parent');
  let cur = doc;
  for (const t of path) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(t, cur.length, pointer, false)];
    else if (isObject(cur) && t in cur) cur = cur[t];
    else throw errors.unprocessable(`path "${pointer}" does not exist`);
  }
  return { parent: cur, last };
}

function read(doc: unknown, pointer: string): unknown {
  if (pointer === '') return doc;
  const { parent, last } = parentOf(doc, pointer);
  if (Array.isArray(parent)) return parent[arrayIndex(last, parent.length, pointer, false)];
  if (isObject(parent) && last in parent) return parent[last];
  throw errors.unprocessable(`path "${pointer}" does not exist`);
}

function add(doc: unknown, pointer: string, value: unknown): unknown {
  if (pointer === '') return value;
  const { parent, last } = parentOf(doc, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length, pointer, true), 0, value);
  else if (isObject(parent)) parent[last] = value;
  else throw errors.unprocessable(`path "${pointer}" has no object or array to add to`);
  return doc;
}

function remove(doc: unknown, pointer: string): unknown {
  const { parent, last } = parentOf(doc, pointer);
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length, pointer, false), 1);
  else if (isObject(parent) && last in parent) Reflect.deleteProperty(parent, last);
  else throw errors.unprocessable(`path "${pointer}" does not exist`);
  return doc;
}

export function applyJsonPatch(target: unknown, patch: unknown): unknown {
  let doc = clone(target);
  for (const op of decode(patch)) {
    switch (op.op) {
      case 'add':
        doc = add(doc, op.path, clone(op.value));
        break;
      case 'remove':
        doc = remove(doc, op.path);
        break;
      case 'replace':
        read(doc, op.path);
        doc = op.path === '' ? clone(op.value) : add(remove(doc, op.path), op.path, clone(op.value));
        break;
      case 'move': {
        const from = op.from ?? '';
        if (op.path.startsWith(`${from}/`))
          throw errors.unprocessable(`cannot move "${from}" into its own child "${op.path}"`);
        const value = read(doc, from);
        doc = add(remove(doc, from), op.path, value);
        break;
      }
      case 'copy':
        doc = add(doc, op.path, clone(read(doc, op.from ?? '')));
        break;
      case 'test':
        if (!jsonEqual(read(doc, op.path), op.value)) {
          throw errors.unprocessable(`testing value ${op.path} failed`);
        }
        break;
    }
  }
  return doc;
}
