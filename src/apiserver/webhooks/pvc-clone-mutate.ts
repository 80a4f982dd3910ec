/**
 * `/pvc-clone-mutate` (cdi-ts; upstream has no such webhook and refuses a bare `k8s.io/CloneRequest` PVC that
 * carries no token): the older PVC API, secured. A PVC created (or updated to be) annotated
 * `k8s.io/CloneRequest: "<namespace>/<name>"` is a clone of that PVC; its creator must be allowed to clone out of the
 * source namespace under the same rule as a DataVolume (src/token/clone.ts). If so the short clone token goes into
 * `cdi.kubevirt.io/storage.clone.token` (the clone controller checks it and mints the long-term one); if not, the
 * PVC is refused with the missing permission named. A malformed request annotation is refused too. The webhook
 * configuration selects only PVCs carrying the annotation (a matchCondition), so nothing else depends on it.
 */
import { Ann } from '../../api/constants.ts';
import { CloneSourceKind } from '../../token/clone.ts';
import { allowed, denied, errored, patched, type AdmissionRequest, type Admitter } from '../admission.ts';
import { decide, sourceNamespaceExists, tokenPatch, type CloneAuthDeps } from './clone-auth.ts';

export const PvcCloneMutatePath = '/pvc-clone-mutate';

interface Pvc {
  metadata?: {
    name?: string;
    namespace?: string;
    annotations?: Record<string, string>;
    deletionTimestamp?: string;
  };
}

/** `namespace/name`, both DNS labels/subdomains; undefined when it is not that. */
export function parseCloneRequest(v: string): { namespace: string; name: string } | undefined {
  const m = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?)\/([a-z0-9]([-a-z0-9.]*[a-z0-9])?)$/.exec(v);
  if (!m || m[1]!.length > 63 || m[3]!.length > 253) return undefined;
  return { namespace: m[1]!, name: m[3]! };
}

export function pvcCloneMutate(deps: CloneAuthDeps): Admitter {
  return async (r: AdmissionRequest) => {
    if (r.resource.group !== '' || r.resource.resource !== 'persistentvolumeclaims') {
      return errored(`expected the resource persistentvolumeclaims, got ${r.resource.resource}`);
    }
    const pvc = (r.object ?? {}) as Pvc;
    if (pvc.metadata?.deletionTimestamp) return allowed();
    const request = pvc.metadata?.annotations?.[Ann.CloneRequest];
    if (request === undefined) return allowed();
    const old = (r.oldObject ?? {}) as Pvc;
    // an update that leaves the request as it was is not a new request
    if (r.operation === 'UPDATE' && old.metadata?.annotations?.[Ann.CloneRequest] === request)
      return allowed();
    const field = `metadata.annotations.${Ann.CloneRequest}`;
    const src = parseCloneRequest(request);
    if (!src) {
      return denied([
        {
          field,
          message: `${Ann.CloneRequest} "${request}" is not "<source namespace>/<source PVC name>"`,
          reason: 'FieldValueInvalid',
        },
      ]);
    }
    const namespace = pvc.metadata?.namespace || r.namespace || '';
    const name = pvc.metadata?.name || r.name || '';
    const source = { kind: CloneSourceKind.Pvc, namespace: src.namespace, name: src.name };
    if (!(await sourceNamespaceExists(deps.kube, source.namespace))) {
      return denied([
        {
          field,
          message: `the clone source namespace "${source.namespace}" of ${Ann.CloneRequest} does not exist`,
          reason: 'FieldValueInvalid',
        },
      ]);
    }
    const decision = await decide(deps, r, source, namespace);
    if (!decision.allowed) return denied([{ field, message: decision.reason, reason: 'FieldValueInvalid' }]);
    return patched(await tokenPatch(deps, pvc, source, { namespace, name }));
  };
}
