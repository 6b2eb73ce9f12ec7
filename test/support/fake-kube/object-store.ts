// The objects of every registered resource, one global resourceVersion counter, and a bounded
// history of changes for watches that resume from a resourceVersion. Write rules follow the
// real API server's generic registry:
// - create sets uid, creationTimestamp, generation 1 and a fresh resourceVersion;
// - update refuses a stale metadata.resourceVersion (409 Conflict) and is unconditional
//   without one; an update that changes nothing is not written (no new resourceVersion, no
//   event), as upstream; generation grows when anything outside metadata and status changes;
// - with a status subresource, writes to the object keep the stored status and writes to
//   /status keep the stored spec (metadata changes are accepted on both, as the real node,
//   service and pod strategies do: the upstream service controller edits its finalizer
//   through services/status);
// - delete of an object with finalizers sets deletionTimestamp and keeps it; the update that
//   empties its finalizers removes it (DELETED event). No finalizer may be added meanwhile.
// Stored objects are never modified in place: each write stores a new object, so history
// entries and the objects handed to listeners stay as they were.
import { randomUUID } from 'node:crypto';
import { ApiError, errors } from './api-error.js';
import { clone, isObject, jsonEqual, type JsonObject } from './json.js';
import { apiVersionOf, resourceKey, type ResourceRegistry, type ResourceType } from './resources.js';
import type { Selector } from './selectors.js';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid: string;
  resourceVersion: string;
  generation?: number;
  creationTimestamp: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  [key: string]: unknown;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [key: string]: unknown;
}

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  resourceVersion: number;
  type: ChangeType;
  resource: ResourceType;
  object: KubeObject;
  /** The object before a MODIFIED change: watches with selectors turn it into ADDED or DELETED. */
  previous?: KubeObject;
}

export interface Preconditions {
  uid?: string;
  resourceVersion?: string;
}

export type Subresource = 'status' | undefined;

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const GENERATED_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

/** RFC 3339 with seconds, as metav1.Time is written. */
function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function generatedName(prefix: string): string {
  let suffix = '';
  for (let i = 0; i < 5; i++)
    suffix += GENERATED_CHARS.charAt(Math.floor(Math.random() * GENERATED_CHARS.length));
  return prefix + suffix;
}

function finalizersOf(o: KubeObject): string[] {
  return Array.isArray(o.metadata.finalizers) ? o.metadata.finalizers : [];
}

/** Everything but metadata and status: what `generation` counts changes of. */
function specPart(o: KubeObject): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => k !== 'metadata' && k !== 'status'));
}

export class ObjectStore {
  /** The last resourceVersion handed out; starts above 0, which means "any" to list and watch. */
  private lastVersion = 1;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: Change[] = [];
  /** Changes up to this resourceVersion are no longer in `history`. */
  private compactedThrough = 0;
  private readonly listeners = new Set<(change: Change) => void>();

  constructor(
    readonly registry: ResourceRegistry,
    private readonly historyLimit: number,
  ) {
    if (!Number.isInteger(historyLimit) || historyLimit < 1) {
      throw new Error(`historyLimit must be a positive integer, not ${historyLimit}`);
    }
  }

  get resourceVersion(): number {
    return this.lastVersion;
  }

  /** The live map of one resource, keyed "namespace/name" (namespaced) or "name". */
  mapOf(r: ResourceType): Map<string, KubeObject> {
    let m = this.objects.get(resourceKey(r));
    if (!m) {
      m = new Map();
      this.objects.set(resourceKey(r), m);
    }
    return m;
  }

  static key(r: ResourceType, namespace: string | undefined, name: string): string {
    return r.namespaced ? `${namespace ?? ''}/${name}` : name;
  }

  get(r: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.mapOf(r).get(ObjectStore.key(r, namespace, name));
  }

  mustGet(r: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const o = this.get(r, namespace, name);
    if (!o) throw errors.notFound(r, name);
    return o;
  }

  /** Objects sorted by key (as etcd lists them), in one namespace or all. */
  list(r: ResourceType, namespace?: string, selector: Selector = () => true): KubeObject[] {
    return [...this.mapOf(r).entries()]
      .filter(([, o]) => namespace === undefined || o.metadata.namespace === namespace)
      .filter(([, o]) => selector(o))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
  }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Changes after `resourceVersion`, or an ApiError 410 when some of them were dropped. */
  changesSince(resourceVersion: number): Change[] {
    if (resourceVersion < this.compactedThrough) {
      throw errors.expired(resourceVersion, this.compactedThrough + 1);
    }
    return this.history.filter((c) => c.resourceVersion > resourceVersion);
  }

  /** The retained history, oldest first. */
  changes(): readonly Change[] {
    return this.history;
  }

  /** Forgets the history: a watch from any earlier resourceVersion then gets 410 Expired. */
  compact(): void {
    this.compactedThrough = this.lastVersion;
    this.history.length = 0;
  }

  // ---- REST verbs -------------------------------------------------------------------------

  create(r: ResourceType, namespace: string | undefined, body: unknown): KubeObject {
    const obj = this.checkBody(r, body);
    const meta = obj.metadata;
    if (r.namespaced) {
      if (meta.namespace && meta.namespace !== namespace) {
        throw errors.badRequest(
          `the namespace of the provided object (${meta.namespace}) does not match the namespace sent on the request (${namespace ?? ''})`,
        );
      }
      meta.namespace = namespace;
    } else delete meta.namespace;
    if (!meta.name && typeof meta.generateName === 'string' && meta.generateName) {
      meta.name = generatedName(meta.generateName);
    }
    this.checkName(r, meta.name);
    if (this.get(r, namespace, meta.name)) throw errors.alreadyExists(r, meta.name);
    meta.uid = randomUUID();
    meta.creationTimestamp = now();
    meta.generation = 1;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    return this.commit(r, 'ADDED', obj);
  }

  /** PUT: `body` replaces the object (or its status); 404 unless the resource creates on update. */
  update(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    body: unknown,
    sub: Subresource,
  ): KubeObject {
    const stored = this.get(r, namespace, name);
    if (!stored) {
      if (r.createOnUpdate && sub === undefined) {
        const obj = this.checkBody(r, body);
        if (obj.metadata.name && obj.metadata.name !== name) throw this.nameMismatch(obj.metadata.name, name);
        obj.metadata.name = name;
        return this.create(r, namespace, obj);
      }
      throw errors.notFound(r, name);
    }
    return this.replace(r, stored, this.checkBody(r, body), sub);
  }

  /** PATCH: `apply` computes the patched object from a copy of the stored one. */
  patch(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    apply: (stored: KubeObject) => unknown,
    sub: Subresource,
  ): KubeObject {
    const stored = this.mustGet(r, namespace, name);
    return this.replace(r, stored, this.checkBody(r, apply(clone(stored))), sub);
  }

  /** DELETE: removes the object, or marks it for deletion while finalizers remain. */
  delete(
    r: ResourceType,
    namespace: string | undefined,
    name: string,
    preconditions: Preconditions = {},
  ): { object: KubeObject; removed: boolean } {
    const stored = this.mustGet(r, namespace, name);
    if (preconditions.uid && preconditions.uid !== stored.metadata.uid) {
      throw errors.conflict(
        r,
        name,
        `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${stored.metadata.uid}`,
      );
    }
    if (preconditions.resourceVersion && preconditions.resourceVersion !== stored.metadata.resourceVersion) {
      throw errors.conflict(
        r,
        name,
        `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in object meta: ${stored.metadata.resourceVersion}`,
      );
    }
    if (finalizersOf(stored).length === 0) return { object: this.remove(r, stored), removed: true };
    if (stored.metadata.deletionTimestamp) return { object: stored, removed: false };
    const marked = clone(stored);
    marked.metadata.deletionTimestamp = now();
    marked.metadata.deletionGracePeriodSeconds = 0;
    return { object: this.commit(r, 'MODIFIED', marked, stored), removed: false };
  }

  // ---- direct writes for tests --------------------------------------------------------------

  /** Creates or replaces `obj` whole (status included) with a new resourceVersion. */
  put(input: unknown): KubeObject {
    if (!isObject(input) || typeof input.apiVersion !== 'string' || typeof input.kind !== 'string') {
      throw new Error('an object to apply needs apiVersion and kind');
    }
    const r = this.registry.fromKind(input.apiVersion, input.kind);
    const obj = this.checkBody(r, input);
    const meta = obj.metadata;
    if (r.namespaced && !meta.namespace) throw new Error(`${r.kind} "${meta.name}" needs metadata.namespace`);
    if (!r.namespaced) delete meta.namespace;
    this.checkName(r, meta.name);
    const stored = this.get(r, meta.namespace, meta.name);
    meta.uid = stored?.metadata.uid ?? (meta.uid || randomUUID());
    meta.creationTimestamp = stored?.metadata.creationTimestamp ?? (meta.creationTimestamp || now());
    meta.generation ??= stored?.metadata.generation ?? 1;
    return this.commit(r, stored ? 'MODIFIED' : 'ADDED', obj, stored);
  }

  /** Removes an object at once, finalizers or not; the removed object, or undefined. */
  forceRemove(r: ResourceType, namespace: string | undefined, name: string): KubeObject | undefined {
    const stored = this.get(r, namespace, name);
    return stored ? this.remove(r, stored) : undefined;
  }

  // ---- rules --------------------------------------------------------------------------------

  /** A copy of `body` as an object of `r`: apiVersion and kind checked and filled in. */
  private checkBody(r: ResourceType, body: unknown): KubeObject {
    if (!isObject(body)) throw errors.badRequest(`the body must be a JSON object (a ${r.kind})`);
    const obj = clone(body);
    const apiVersion = apiVersionOf(r);
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersion) {
      throw errors.badRequest(
        `the API version in the data (${JSON.stringify(obj.apiVersion)}) does not match the expected API version (${apiVersion})`,
      );
    }
    if (obj.kind !== undefined && obj.kind !== r.kind) {
      throw errors.badRequest(
        `the kind in the data (${JSON.stringify(obj.kind)}) does not match the expected kind (${r.kind})`,
      );
    }
    if (obj.metadata !== undefined && !isObject(obj.metadata)) {
      throw errors.badRequest('metadata must be a JSON object');
    }
    checkMicroTimes(r, obj);
    const metadata = (obj.metadata ?? {}) as ObjectMeta;
    metadata.name = typeof metadata.name === 'string' ? metadata.name : '';
    return { ...obj, apiVersion, kind: r.kind, metadata };
  }

  private checkName(r: ResourceType, name: string): void {
    if (!name) {
      throw errors.invalid(
        r.kind,
        r.group,
        '',
        'metadata.name',
        'Required value: name or generateName is required',
      );
    }
    if (name.length > 253 || !NAME.test(name)) {
      throw errors.invalid(
        r.kind,
        r.group,
        name,
        'metadata.name',
        `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
      );
    }
  }

  private nameMismatch(inBody: string, inUrl: string): ApiError {
    return errors.badRequest(
      `the name of the object (${inBody}) does not match the name on the URL (${inUrl})`,
    );
  }

  /** The update rules shared by PUT and PATCH. */
  private replace(r: ResourceType, stored: KubeObject, next: KubeObject, sub: Subresource): KubeObject {
    const name = stored.metadata.name;
    const meta = next.metadata;
    if (meta.name && meta.name !== name) throw this.nameMismatch(meta.name, name);
    if (r.namespaced && meta.namespace && meta.namespace !== stored.metadata.namespace) {
      throw errors.badRequest(
        `the namespace of the provided object (${meta.namespace}) does not match the namespace sent on the request (${stored.metadata.namespace ?? ''})`,
      );
    }
    if (meta.uid && meta.uid !== stored.metadata.uid) {
      throw errors.conflict(
        r,
        name,
        `Precondition failed: UID in precondition: ${meta.uid}, UID in object meta: ${stored.metadata.uid}`,
      );
    }
    if (meta.resourceVersion && meta.resourceVersion !== stored.metadata.resourceVersion) {
      throw errors.conflict(
        r,
        name,
        'the object has been modified; please apply your changes to the latest version and try again',
      );
    }
    // System fields are the server's.
    meta.name = name;
    if (r.namespaced) meta.namespace = stored.metadata.namespace;
    else delete meta.namespace;
    meta.uid = stored.metadata.uid;
    meta.creationTimestamp = stored.metadata.creationTimestamp;
    meta.resourceVersion = stored.metadata.resourceVersion;
    if (stored.metadata.generation === undefined) delete meta.generation;
    else meta.generation = stored.metadata.generation;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    const { deletionTimestamp, deletionGracePeriodSeconds } = stored.metadata;
    if (deletionTimestamp !== undefined) meta.deletionTimestamp = deletionTimestamp;
    if (deletionGracePeriodSeconds !== undefined)
      meta.deletionGracePeriodSeconds = deletionGracePeriodSeconds;
    if (r.status) {
      const keep = sub === 'status' ? 'spec' : 'status';
      if (stored[keep] === undefined) Reflect.deleteProperty(next, keep);
      else next[keep] = clone(stored[keep]);
    }
    if (stored.metadata.deletionTimestamp) {
      const before = new Set(finalizersOf(stored));
      const added = finalizersOf(next).filter((f) => !before.has(f));
      if (added.length > 0) {
        throw errors.invalid(
          r.kind,
          r.group,
          name,
          'metadata.finalizers',
          `Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`,
        );
      }
    }
    if (jsonEqual(next, stored)) return stored;
    if (meta.generation !== undefined && !jsonEqual(specPart(next), specPart(stored))) meta.generation += 1;
    // The last finalizer is gone from an object being deleted: it goes now.
    if (meta.deletionTimestamp && finalizersOf(next).length === 0)
      return this.commit(r, 'DELETED', next, stored);
    return this.commit(r, 'MODIFIED', next, stored);
  }

  private remove(r: ResourceType, stored: KubeObject): KubeObject {
    const last = { ...stored, metadata: { ...stored.metadata } };
    return this.commit(r, 'DELETED', last, stored);
  }

  private commit(r: ResourceType, type: ChangeType, obj: KubeObject, previous?: KubeObject): KubeObject {
    this.lastVersion += 1;
    obj.metadata.resourceVersion = String(this.lastVersion);
    const key = ObjectStore.key(r, obj.metadata.namespace, obj.metadata.name);
    if (type === 'DELETED') this.mapOf(r).delete(key);
    else this.mapOf(r).set(key, obj);
    const change: Change = { resourceVersion: this.lastVersion, type, resource: r, object: obj };
    if (previous) change.previous = previous;
    this.history.push(change);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedThrough = dropped[dropped.length - 1]?.resourceVersion ?? this.compactedThrough;
    }
    for (const listener of this.listeners) listener(change);
    return obj;
  }
}

/** MicroTime fields kube-apiserver decodes with Go's RFC3339Micro layout: exactly six fractional digits. */
const MICRO_TIME_FIELDS: Record<string, string[]> = { Lease: ['acquireTime', 'renewTime'] };
const RFC3339_MICRO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$/;

function checkMicroTimes(r: ResourceType, obj: JsonObject): void {
  const fields = MICRO_TIME_FIELDS[r.kind];
  const spec = obj.spec;
  if (!fields || !isObject(spec)) return;
  for (const field of fields) {
    const value = spec[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' || !RFC3339_MICRO.test(value)) {
      throw errors.badRequest(
        `${r.kind} in version "v1" cannot be handled as a ${r.kind}: parsing time ${JSON.stringify(value)} as "2006-01-02T15:04:05.000000Z07:00": spec.${field} must have exactly six fractional digits`,
      );
    }
  }
}
