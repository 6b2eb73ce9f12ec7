// Strategic merge patch (application/strategic-merge-patch+json) for the built-in kinds a
// cloud-controller-manager touches, following the patch tags of k8s.io/api:
// - maps merge recursively; null deletes a key;
// - lists listed in MERGE_LISTS merge by their key (status.addresses and status.conditions by
//   `type`, spec.ports by `port`, ...) or, with key "", as a set of scalars (metadata.finalizers,
//   spec.podCIDRs); every other list is atomic and replaced whole. spec.taints is atomic
//   upstream (no patch tags, `+listType=atomic`): a patch carries the node's full taint list,
//   which is what client-go's PatchNodeTaints sends;
// - directives as client-go's CreateTwoWayMergePatch writes them: `$patch: delete` on a list
//   item (by merge key) or a map, `$patch: replace` on a map or as a list item,
//   `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>` (listed items first, in that
//   order, the others after in their stored order) and `$retainKeys`.
// Not supported: other kinds' tags (their lists are atomic here), `$patch: merge` on lists.
import { errors } from './api-error.js';
import { clone, isObject, jsonEqual, type JsonObject } from './json.js';

/** Merge key by dotted path ("[]" steps into list items); "" merges a list of scalars as a set. */
type ListStrategies = Record<string, string>;

const COMMON: ListStrategies = { 'metadata.finalizers': '', 'metadata.ownerReferences': 'uid' };

const CONTAINER_LISTS = (prefix: string): ListStrategies => ({
  [prefix]: 'name',
  [`${prefix}[].ports`]: 'containerPort',
  [`${prefix}[].env`]: 'name',
  [`${prefix}[].volumeMounts`]: 'mountPath',
  [`${prefix}[].volumeDevices`]: 'devicePath',
});

export const MERGE_LISTS: Record<string, ListStrategies> = {
  Node: { 'spec.podCIDRs': '', 'status.addresses': 'type', 'status.conditions': 'type' },
  Service: { 'spec.ports': 'port', 'status.conditions': 'type' },
  Pod: {
    ...CONTAINER_LISTS('spec.containers'),
    ...CONTAINER_LISTS('spec.initContainers'),
    'spec.volumes': 'name',
    'spec.imagePullSecrets': 'name',
    'spec.hostAliases': 'ip',
    'status.conditions': 'type',
    'status.podIPs': 'ip',
    'status.hostIPs': 'ip',
  },
  Namespace: { 'status.conditions': 'type' },
  ServiceAccount: { secrets: 'name' },
};

const DELETE = Symbol('delete');
const SET_ORDER = '$setElementOrder/';
const DELETE_FROM = '$deleteFromPrimitiveList/';

/** Removes directive keys from a value that replaces the stored one whole. */
function withoutDirectives(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutDirectives);
  if (!isObject(value)) return value;
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(value)) if (!k.startsWith('$')) out[k] = withoutDirectives(v);
  return out;
}

function fieldOf(directiveKey: string, prefix: string): string {
  return directiveKey.slice(prefix.length);
}

class Merger {
  constructor(private readonly lists: ListStrategies) {}

  map(original: JsonObject, patch: JsonObject, path: string): JsonObject | typeof DELETE {
    const directive = patch.$patch;
    if (directive === 'delete') return DELETE;
    if (directive === 'replace') return withoutDirectives(patch) as JsonObject;
    if (directive !== undefined && directive !== 'merge') {
      throw errors.badRequest(`unknown patch directive "$patch": ${JSON.stringify(directive)} at "${path}"`);
    }
    const out: JsonObject = { ...original };
    const retain = patch.$retainKeys;
    if (retain !== undefined) {
      if (!Array.isArray(retain)) throw errors.badRequest(`$retainKeys at "${path}" must be a list`);
      for (const k of Object.keys(out)) if (!retain.includes(k)) Reflect.deleteProperty(out, k);
    }
    const orders = new Map<string, unknown[]>();
    const deletions = new Map<string, unknown[]>();
    for (const [key, value] of Object.entries(patch)) {
      if (key === '$patch' || key === '$retainKeys') continue;
      if (key.startsWith(SET_ORDER) || key.startsWith(DELETE_FROM)) {
        if (!Array.isArray(value)) throw errors.badRequest(`${key} at "${path}" must be a list`);
        if (key.startsWith(SET_ORDER)) orders.set(fieldOf(key, SET_ORDER), value);
        else deletions.set(fieldOf(key, DELETE_FROM), value);
        continue;
      }
      if (key.startsWith('$')) throw errors.badRequest(`unknown patch directive "${key}" at "${path}"`);
      const child = path ? `${path}.${key}` : key;
      if (value === null) Reflect.deleteProperty(out, key);
      else if (Array.isArray(value)) {
        const mergeKey = this.lists[child];
        const current = out[key];
        out[key] =
          mergeKey === undefined
            ? withoutDirectives(value)
            : this.list(Array.isArray(current) ? current : [], value, child, mergeKey);
      } else if (isObject(value)) {
        const current = out[key];
        const merged = this.map(isObject(current) ? current : {}, value, child);
        if (merged === DELETE) Reflect.deleteProperty(out, key);
        else out[key] = merged;
      } else out[key] = value;
    }
    for (const [field, values] of deletions) {
      const current = out[field];
      if (Array.isArray(current)) out[field] = current.filter((v) => !values.some((d) => jsonEqual(d, v)));
    }
    for (const [field, order] of orders) {
      const current = out[field];
      const mergeKey = this.lists[path ? `${path}.${field}` : field];
      if (Array.isArray(current) && mergeKey !== undefined) out[field] = reorder(current, order, mergeKey);
    }
    return out;
  }

  private list(original: unknown[], patch: unknown[], path: string, mergeKey: string): unknown[] {
    const replace = patch.findIndex((v) => isObject(v) && v.$patch === 'replace');
    if (replace >= 0) return withoutDirectives(patch.filter((_, i) => i !== replace)) as unknown[];
    if (mergeKey === '') {
      const out = [...original];
      for (const v of patch) if (!out.some((o) => jsonEqual(o, v))) out.push(v);
      return out;
    }
    let out = [...original];
    for (const item of patch) {
      if (!isObject(item) || !(mergeKey in item)) {
        throw errors.badRequest(`an item of "${path}" does not contain the merge key "${mergeKey}"`);
      }
      const same = (o: unknown) => isObject(o) && jsonEqual(o[mergeKey], item[mergeKey]);
      if (item.$patch === 'delete') {
        out = out.filter((o) => !same(o));
        continue;
      }
      const at = out.findIndex(same);
      const stored = at >= 0 ? out[at] : undefined;
      const merged = this.map(isObject(stored) ? stored : {}, item, `${path}[]`);
      if (merged === DELETE) continue;
      if (at >= 0) out[at] = merged;
      else out.push(merged);
    }
    return out;
  }
}

function reorder(list: unknown[], order: unknown[], mergeKey: string): unknown[] {
  const keyOf = (v: unknown): unknown => (mergeKey === '' ? v : isObject(v) ? v[mergeKey] : undefined);
  const rank = (v: unknown): number => {
    const i = order.findIndex((o) => jsonEqual(keyOf(o), keyOf(v)));
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return [...list].sort((a, b) => rank(a) - rank(b));
}

/** Applies `patch` to `original` for an object of `kind`; neither argument is modified. */
export function applyStrategicMergePatch(original: JsonObject, patch: unknown, kind: string): JsonObject {
  if (!isObject(patch)) throw errors.badRequest('a strategic merge patch must be a JSON object');
  const merger = new Merger({ ...COMMON, ...MERGE_LISTS[kind] });
  const merged = merger.map(clone(original), patch, '');
  if (merged === DELETE) throw errors.badRequest('a strategic merge patch cannot delete the whole object');
  return merged;
}
