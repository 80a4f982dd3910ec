// CDI.spec.customizeComponents, as upstream (pkg/operator/controller/patches.go): `patches` (json, merge or strategic,
// by resourceType and resourceName, "*" matching any) and `flags` (extra arguments of cdi-apiserver, cdi-deployment
// and cdi-uploadproxy, as a strategic patch of the container's args) are applied to the rendered Deployments,
// Services, webhook configurations and APIServices before they are applied; a patched object is annotated with the
// hash of the customizations (cdi.kubevirt.io/customizer-identifier), so a change shows in the object.
import { createHash } from 'node:crypto';
import type { Obj } from '../deploy/common.ts';

export const CustomizerAnnotation = 'cdi.kubevirt.io/customizer-identifier';

export interface CustomizePatch {
  resourceName: string;
  resourceType: string;
  patch: string;
  type: string;
}

export interface CustomizeComponents {
  patches?: CustomizePatch[];
  flags?: {
    api?: Record<string, string>;
    controller?: Record<string, string>;
    uploadProxy?: Record<string, string>;
  };
}

const PatchableKinds = new Set([
  'Deployment',
  'Service',
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'APIService',
]);

/** upstream flagsToArray: `-<flag>` then its value when it has one. */
function flagArgs(flags: Record<string, string>): string[] {
  return Object.entries(flags).flatMap(([k, v]) => [`-${k.toLowerCase()}`, ...(v !== '' ? [v] : [])]);
}

function flagPatches(c: CustomizeComponents): CustomizePatch[] {
  const out: CustomizePatch[] = [];
  const add = (deployment: string, container: string, flags: Record<string, string> | undefined): void => {
    if (!flags || Object.keys(flags).length === 0) return;
    out.push({
      resourceName: deployment,
      resourceType: 'Deployment',
      type: 'strategic',
      patch: JSON.stringify({
        spec: { template: { spec: { containers: [{ name: container, args: flagArgs(flags) }] } } },
      }),
    });
  };
  add('cdi-apiserver', 'cdi-apiserver', c.flags?.api);
  add('cdi-deployment', 'cdi-controller', c.flags?.controller);
  add('cdi-uploadproxy', 'cdi-uploadproxy', c.flags?.uploadProxy);
  return out;
}

/** upstream getHash: sha1 of the customizations, patches ordered by length first. */
export function customizationsHash(c: CustomizeComponents): string {
  const patches = [...(c.patches ?? [])].sort((a, b) => a.patch.length - b.patch.length);
  const canonical = { ...(c.patches ? { patches } : {}), ...(c.flags ? { flags: c.flags } : {}) };
  return createHash('sha1').update(JSON.stringify(canonical)).digest('hex');
}

const matches = (value: string, key: string): boolean =>
  value === '*' || value.toLowerCase() === key.toLowerCase();

/**
 * Applies the customizations to `objects` in place (they are fresh renders). Throws one line naming the patch when
 * a patch cannot be parsed or applied.
 */
export function applyCustomizations(objects: Obj[], c: CustomizeComponents | undefined): void {
  if (!c) return;
  const patches = [...(c.patches ?? []), ...flagPatches(c)];
  if (patches.length === 0) return;
  const hash = customizationsHash(c);
  for (const obj of objects) {
    const kind = String(obj['kind']);
    if (!PatchableKinds.has(kind)) continue;
    const name = (obj['metadata'] as { name?: string } | undefined)?.name ?? '';
    const mine = patches.filter((p) => matches(p.resourceType, kind) && matches(p.resourceName, name));
    if (mine.length === 0) continue;
    let cur: Obj = obj;
    for (const p of mine) cur = applyOne(cur, p, `${kind} ${name}`);
    const meta = (cur['metadata'] ??= {}) as Obj;
    meta['annotations'] = { ...(meta['annotations'] as Obj | undefined), [CustomizerAnnotation]: hash };
    for (const k of Object.keys(obj)) delete obj[k];
    Object.assign(obj, cur);
  }
}

function applyOne(obj: Obj, p: CustomizePatch, what: string): Obj {
  const where = `customizeComponents patch (${p.type}) for ${what}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(p.patch);
  } catch (e) {
    throw new Error(`${where} is not JSON: ${(e as Error).message}`);
  }
  switch (p.type) {
    case 'json':
      if (!Array.isArray(parsed)) throw new Error(`${where} must be a JSON array of operations`);
      return jsonPatch(obj, parsed as JsonOp[], where);
    case 'merge':
      return mergePatch(obj, parsed) as Obj;
    case 'strategic':
      return strategicMerge(obj, parsed, []) as Obj;
    default:
      throw new Error(`${where}: type must be json, merge or strategic`);
  }
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  const out: Obj = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

interface JsonOp {
  op: string;
  path: string;
  value?: unknown;
  from?: string;
}

function pointer(path: string, where: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw new Error(`${where}: path "${path}" must start with /`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/**
 * RFC 6902 with the options upstream uses: a `remove` of a missing path is a no-op, an `add` creates missing parent
 * objects.
 */
export function jsonPatch(doc: Obj, ops: JsonOp[], where: string): Obj {
  const root = { v: structuredClone(doc) as unknown };
  const parentOf = (parts: string[], create: boolean): { parent: unknown; key: string } | undefined => {
    let cur: unknown = root.v;
    for (const part of parts.slice(0, -1)) {
      if (Array.isArray(cur)) cur = cur[Number(part)];
      else if (isObj(cur)) {
        if (cur[part] === undefined && create) cur[part] = {};
        cur = cur[part];
      } else return undefined;
      if (cur === undefined) return undefined;
    }
    return { parent: cur, key: parts[parts.length - 1] ?? '' };
  };
  const get = (parts: string[]): unknown => {
    let cur: unknown = root.v;
    for (const part of parts) {
      if (Array.isArray(cur)) cur = cur[Number(part)];
      else if (isObj(cur)) cur = cur[part];
      else return undefined;
    }
    return cur;
  };
  const put = (parts: string[], value: unknown, replace: boolean): void => {
    if (parts.length === 0) {
      root.v = structuredClone(value);
      return;
    }
    const at = parentOf(parts, true);
    if (!at) throw new Error(`${where}: path /${parts.join('/')} does not exist`);
    const { parent, key } = at;
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (!Number.isInteger(i) || i < 0 || i > parent.length)
        throw new Error(`${where}: bad array index ${key}`);
      if (replace) parent[i] = structuredClone(value);
      else parent.splice(i, 0, structuredClone(value));
    } else if (isObj(parent)) parent[key] = structuredClone(value);
    else throw new Error(`${where}: path /${parts.join('/')} does not exist`);
  };
  const remove = (parts: string[]): void => {
    const at = parentOf(parts, false);
    if (!at) return;
    const { parent, key } = at;
    if (Array.isArray(parent)) {
      const i = Number(key);
      if (i >= 0 && i < parent.length) parent.splice(i, 1);
    } else if (isObj(parent)) delete parent[key];
  };
  for (const op of ops) {
    const parts = pointer(op.path, where);
    switch (op.op) {
      case 'add':
        put(parts, op.value, false);
        break;
      case 'replace':
        if (get(parts) === undefined)
          throw new Error(`${where}: cannot replace ${op.path}: it does not exist`);
        put(parts, op.value, true);
        break;
      case 'remove':
        remove(parts);
        break;
      case 'copy':
      case 'move': {
        const from = pointer(op.from ?? '', where);
        const v = get(from);
        if (v === undefined) throw new Error(`${where}: ${op.op} from ${op.from ?? ''}: it does not exist`);
        if (op.op === 'move') remove(from);
        put(parts, v, false);
        break;
      }
      case 'test':
        if (JSON.stringify(get(parts)) !== JSON.stringify(op.value))
          throw new Error(`${where}: test of ${op.path} failed`);
        break;
      default:
        throw new Error(`${where}: unknown operation "${op.op}"`);
    }
  }
  return root.v as Obj;
}

/** The merge key of a list in the kinds customizations touch (Kubernetes' patchMergeKey tags); none: replace. */
function mergeKey(field: string, items: unknown[]): string | undefined {
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'env':
    case 'volumes':
    case 'imagePullSecrets':
    case 'webhooks':
      return 'name';
    case 'volumeMounts':
      return 'mountPath';
    case 'ports':
      return items.some((i) => isObj(i) && 'containerPort' in i) ? 'containerPort' : 'port';
    default:
      return undefined;
  }
}

/**
 * A strategic merge patch for the kinds above: maps merge (null deletes a key), lists with a merge key merge by it
 * (an element with `$patch: delete` removes its match), other lists are replaced, `$patch: replace` on a map
 * replaces it.
 */
export function strategicMerge(target: unknown, patch: unknown, path: string[]): unknown {
  if (!isObj(patch)) return structuredClone(patch);
  if (patch['$patch'] === 'replace') {
    const { $patch: _, ...rest } = patch;
    return structuredClone(rest);
  }
  const out: Obj = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$')) continue;
    if (v === null) {
      delete out[k];
      continue;
    }
    if (Array.isArray(v)) {
      const cur = Array.isArray(out[k]) ? (out[k] as unknown[]) : [];
      const key = mergeKey(k, [...cur, ...(v as unknown[])]);
      if (!key) {
        out[k] = structuredClone(v);
        continue;
      }
      const merged = cur.map((x) => structuredClone(x));
      for (const item of v) {
        if (!isObj(item)) continue;
        const i = merged.findIndex((m) => isObj(m) && m[key] === item[key]);
        if (item['$patch'] === 'delete') {
          if (i >= 0) merged.splice(i, 1);
        } else if (i >= 0) merged[i] = strategicMerge(merged[i], item, [...path, k]);
        else merged.push(strategicMerge(undefined, item, [...path, k]));
      }
      out[k] = merged;
      continue;
    }
    out[k] = strategicMerge(out[k], v, [...path, k]);
  }
  return out;
}
