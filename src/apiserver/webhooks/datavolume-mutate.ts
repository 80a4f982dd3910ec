/**
 * `/datavolume-mutate` (upstream pkg/apiserver/webhooks/datavolume-mutate.go): clone authorization. For a DataVolume
 * that clones (source.pvc, source.snapshot, or a sourceRef to a DataSource naming one) the requesting user must be
 * allowed to clone out of the source namespace (src/token/clone.ts); if so, on create, the short clone token goes
 * into `cdi.kubevirt.io/storage.clone.token`, which the controller turns into the long-term token. If not, the
 * DataVolume is refused with the missing permission named. Updates are checked again (a user who lost the right
 * cannot change the DataVolume) but get no new token. Pre-populated and static volumes need no token: they are let
 * through without one when the check fails or the source is missing, as upstream.
 */
import { Ann } from '../../api/constants.ts';
import type { DataSource } from '../../api/datasource.ts';
import { parseDataVolume, ParseError } from '../../api/parse.ts';
import { allowed, denied, errored, patched, type AdmissionRequest, type Admitter } from '../admission.ts';
import {
  cloneSourceOf,
  DataSourceResource,
  decide,
  SourceLookupError,
  sourceNamespaceExists,
  tokenPatch,
  type CloneAuthDeps,
} from './clone-auth.ts';

export const DataVolumeMutatePath = '/datavolume-mutate';

export function dataVolumeMutate(deps: CloneAuthDeps): Admitter {
  return async (r: AdmissionRequest) => {
    if (r.resource.group !== 'cdi.kubevirt.io' || r.resource.resource !== 'datavolumes') {
      return errored(`expected the resource datavolumes.cdi.kubevirt.io, got ${r.resource.resource}`);
    }
    let dv;
    try {
      dv = parseDataVolume(r.object);
    } catch (e) {
      if (e instanceof ParseError) return errored(e.message);
      throw e;
    }
    if (dv.metadata?.deletionTimestamp) return allowed();
    const namespace = dv.metadata?.namespace || r.namespace || '';
    const name = dv.metadata?.name || r.name || '';
    const anns = dv.metadata?.annotations ?? {};
    const noTokenOkay = Ann.PrePopulated in anns || Ann.CheckStaticVolume in anns;
    let source;
    try {
      source = await cloneSourceOf(dv, namespace, (ns, n) =>
        deps.kube.getOrUndefined<DataSource & { metadata: object }>(DataSourceResource, n, ns),
      );
    } catch (e) {
      if (!(e instanceof SourceLookupError)) throw e;
      return noTokenOkay ? allowed() : errored(e.message);
    }
    if (!source) return allowed();
    if (!(await sourceNamespaceExists(deps.kube, source.namespace))) {
      return noTokenOkay ? allowed() : errored(`namespaces "${source.namespace}" not found`);
    }
    const decision = await decide(deps, r, source, namespace);
    if (!decision.allowed) {
      if (noTokenOkay) return allowed();
      return denied([
        { field: 'spec.source.PVC.namespace', message: decision.reason, reason: 'FieldValueInvalid' },
      ]);
    }
    if (r.operation !== 'CREATE') return allowed();
    return patched(await tokenPatch(deps, dv, source, { namespace, name }));
  };
}
