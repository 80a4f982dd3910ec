/**
 * Clone authorization (cdi-upstream.md §5): who may clone out of a namespace, and the tokens that carry the answer
 * from the admission webhook (which knows the user) to the controller (which does the clone).
 *
 * The rule, upstream's: a clone within one namespace needs nothing more; across namespaces the user (or service
 * account) must be allowed, in the source namespace,
 *   PVC source:       `create datavolumes/source` (cdi.kubevirt.io; ClusterRole cdi.kubevirt.io:clone-sourcer)
 *                     or `create pods`;
 *   snapshot source:  `create datavolumes/source`, or both `create pods` and `create persistentvolumeclaims`.
 * (Upstream asks for the resource "pvcs" in the last check, which no RBAC rule but "*" grants; this asks for
 * "persistentvolumeclaims", which is what it means.)
 *
 * Tokens: the webhook signs a short one (issuer cdi-apiserver, 5 minutes) into
 * `cdi.kubevirt.io/storage.clone.token`: operation Clone, the source's name, namespace and resource, params
 * targetNamespace and targetName. The controller checks it, then mints the long-term token (issuer cdi-deployment,
 * 10 years) into `cdi.kubevirt.io/storage.extended.clone.token`, bound to the target's uid (param `uid`), so that a
 * retry hours later, or a DataVolume re-created from a template, still proves the permission it was given.
 */
import {
  Operation,
  TokenError,
  type GroupVersionResource,
  type TokenGenerator,
  type TokenPayload,
  type TokenValidator,
} from './token.ts';

export const CloneTokenIssuer = 'cdi-apiserver';
export const ExtendedCloneTokenIssuer = 'cdi-deployment';
export const CloneTokenLifetimeMs = 5 * 60_000;
export const ExtendedCloneTokenLifetimeMs = 10 * 365 * 24 * 3600_000;
export const CloneTokenLeewayMs = 10_000;

export const CloneSourceKind = { Pvc: 'pvc', Snapshot: 'snapshot' } as const;
export type CloneSourceKind = (typeof CloneSourceKind)[keyof typeof CloneSourceKind];

export const CloneTokenResource: Record<CloneSourceKind, GroupVersionResource> = {
  pvc: { group: '', version: 'v1', resource: 'persistentvolumeclaims' },
  snapshot: { group: 'snapshot.storage.k8s.io', version: 'v1', resource: 'volumesnapshots' },
};

export interface CloneSource {
  kind: CloneSourceKind;
  namespace: string;
  name: string;
}

export interface CloneTarget {
  namespace: string;
  name: string;
  /** Long-term tokens are bound to the target object's uid. */
  uid?: string;
}

/** The payload the webhook signs for a clone of `source` into `target`. */
export function clonePayload(source: CloneSource, target: CloneTarget): TokenPayload {
  return {
    operation: Operation.Clone,
    name: source.name,
    namespace: source.namespace,
    resource: CloneTokenResource[source.kind],
    params: { targetNamespace: target.namespace, targetName: target.name },
  };
}

/**
 * Checks that a verified payload grants this clone (upstream validateTokenData); TokenError says what differs. A
 * payload bound to a uid only fits a target with that uid.
 */
export function checkClonePayload(p: TokenPayload, source: CloneSource, target: CloneTarget): void {
  const want = CloneTokenResource[source.kind].resource;
  const problems: string[] = [];
  if (p.operation !== Operation.Clone) problems.push(`it is for ${p.operation || 'no operation'}, not Clone`);
  if (p.namespace !== source.namespace || p.name !== source.name || p.resource.resource !== want) {
    problems.push(
      `it names the source ${p.resource.resource} ${p.namespace}/${p.name}, not ${want} ${source.namespace}/${source.name}`,
    );
  }
  const tns = p.params?.targetNamespace ?? '';
  const tname = p.params?.targetName ?? '';
  if (tns !== target.namespace || tname !== target.name) {
    problems.push(`it is for the target ${tns}/${tname}, not ${target.namespace}/${target.name}`);
  }
  const uid = p.params?.uid ?? '';
  if (uid !== '' && uid !== (target.uid ?? '')) problems.push('it was given to another object of that name');
  if (problems.length > 0)
    throw new TokenError(`the clone token does not grant this clone: ${problems.join('; ')}`);
}

/** The three kinds of tokens the controller handles, with the keys they need. */
export interface CloneTokens {
  /** Verifies the webhook's short tokens (issuer cdi-apiserver). */
  short: TokenValidator;
  /** Verifies long-term tokens (issuer cdi-deployment). */
  long: TokenValidator;
  /** Signs long-term tokens. */
  longGenerator: TokenGenerator;
}

/**
 * The long-term token for a target that holds a short one: the short one is verified and must grant this clone,
 * then the same grant is signed for 10 years, bound to `target.uid`.
 */
export async function extendCloneToken(
  t: CloneTokens,
  shortToken: string,
  source: CloneSource,
  target: CloneTarget & { uid: string },
): Promise<string> {
  const p = await t.short.validate(shortToken);
  checkClonePayload(p, source, target);
  return t.longGenerator.generate({ ...p, params: { ...p.params, uid: target.uid } });
}

/**
 * Verifies a long-term token for `target` and re-signs it for another object that carries on the same clone (the
 * DataVolume's grant handed to its PVC: upstream ensureExtendedTokenPVC), bound to `toUid`.
 */
export async function rebindCloneToken(
  t: CloneTokens,
  longToken: string,
  source: CloneSource,
  target: CloneTarget & { uid: string },
  to: { namespace: string; name: string; uid: string },
): Promise<string> {
  const p = await t.long.validate(longToken);
  checkClonePayload(p, source, target);
  return t.longGenerator.generate({
    ...p,
    params: { ...p.params, targetNamespace: to.namespace, targetName: to.name, uid: to.uid },
  });
}

/**
 * Does the target carry a valid grant for this clone? The long-term token when there is one, else the short one; a
 * clone within one namespace needs none. TokenError says why not.
 */
export async function verifyCloneGrant(
  t: CloneTokens,
  tokens: { short?: string; long?: string },
  source: CloneSource,
  target: CloneTarget,
): Promise<void> {
  if (source.namespace === target.namespace) return;
  if (tokens.long) {
    checkClonePayload(await t.long.validate(tokens.long), source, target);
    return;
  }
  if (!tokens.short) {
    throw new TokenError(
      `a clone from another namespace needs a clone token, and ${target.namespace}/${target.name} has none (it is added when the object is created by someone allowed to clone from ${source.namespace})`,
    );
  }
  checkClonePayload(await t.short.validate(tokens.short), source, target);
}

// ---- the permission rule ----

export interface ResourceAttributes {
  namespace: string;
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  name?: string;
}

export interface Subject {
  user: string;
  groups?: string[];
  extra?: Record<string, string[]>;
  uid?: string;
}

/** Asks a SubjectAccessReview; true when allowed. */
export type AccessReview = (who: Subject, attrs: ResourceAttributes) => Promise<boolean>;

export interface CloneDecision {
  allowed: boolean;
  /** Why not, naming the permission that is missing and how to get it. */
  reason: string;
}

/** The service account as a SubjectAccessReview subject (upstream CanServiceAccountClonePVC). */
export function serviceAccountSubject(namespace: string, name: string): Subject {
  return {
    user: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
  };
}

/** May `who`, creating something in `targetNamespace`, clone `source`? */
export async function canClone(
  review: AccessReview,
  who: Subject,
  source: CloneSource,
  targetNamespace: string,
): Promise<CloneDecision> {
  if (source.namespace === targetNamespace) return { allowed: true, reason: '' };
  const ns = source.namespace;
  const at = (resource: string, group = '', subresource?: string): ResourceAttributes => ({
    namespace: ns,
    verb: 'create',
    group,
    resource,
    ...(subresource ? { subresource } : {}),
    name: source.name,
  });
  if (await review(who, at('datavolumes', 'cdi.kubevirt.io', 'source'))) return { allowed: true, reason: '' };
  if (source.kind === CloneSourceKind.Pvc) {
    if (await review(who, at('pods'))) return { allowed: true, reason: '' };
  } else {
    const pods = await review(who, at('pods'));
    if (pods && (await review(who, at('persistentvolumeclaims')))) return { allowed: true, reason: '' };
  }
  const implicit =
    source.kind === CloneSourceKind.Pvc
      ? '"create" on "pods"'
      : '"create" on both "pods" and "persistentvolumeclaims"';
  return {
    allowed: false,
    reason:
      `User ${who.user} has insufficient permissions in clone source namespace ${ns}: cloning ` +
      `${source.kind === CloneSourceKind.Pvc ? 'PersistentVolumeClaim' : 'VolumeSnapshot'} ${ns}/${source.name} ` +
      `needs "create" on "datavolumes/source" (group cdi.kubevirt.io) or ${implicit} in ${ns}; an administrator ` +
      `of ${ns} grants it with a RoleBinding to the ClusterRole cdi.kubevirt.io:clone-sourcer`,
  };
}
