/**
 * /objecttransfer-validate (upstream pkg/apiserver/webhooks/transfer-validate.go): ObjectTransfer is deprecated
 * upstream (removed in v1), but v1.66 still validates it, and so do we. On CREATE the target must name a namespace
 * and/or a name, the source kind is DataVolume or PersistentVolumeClaim, and the target object (the source's
 * namespace/name with the target's replacing them) must not exist yet; an admitted transfer carries upstream's
 * deprecation warning. On UPDATE the spec is immutable (the status may change). Other operations pass. Messages are
 * upstream's (400, as its toAdmissionResponseError).
 *
 *   ValidatingWebhookConfiguration objecttransfer-api-validate: webhook objecttransfer-validate.cdi.kubevirt.io,
 *   path /objecttransfer-validate, objecttransfers (cdi.kubevirt.io/v1beta1) CREATE and UPDATE.
 */
import { isDeepStrictEqual } from 'node:util';
import { ApiError, Resources, type KubeClient, type KubeObject } from '../../kube/index.ts';
import {
  allowed,
  errored,
  type AdmissionRequest,
  type AdmissionResponse,
  type Admitter,
} from '../admission.ts';

export const ObjectTransferValidatePath = '/objecttransfer-validate';

export const ObjectTransferDeprecationWarning =
  'ObjectTransfer feature is deprecated, and will be deleted soon';

export interface ObjectTransferValidateDeps {
  kube: KubeClient;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const rec = (v: unknown): Record<string, unknown> => (isRecord(v) ? v : {});
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
/** A Go *string: nil when absent or null. */
const ptr = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

interface TransferSpec {
  source: {
    apiVersion: string;
    kind: string;
    namespace: string;
    name: string;
    requiredAnnotations?: unknown;
  };
  target: { namespace?: string | undefined; name?: string | undefined };
  parentName?: string | undefined;
}

/**
 * The spec as upstream's typed struct sees it (unknown fields dropped, absent strings empty), so that the UPDATE
 * comparison is apimachinery's Semantic.DeepEqual: an empty requiredAnnotations map equals an absent one.
 */
function typedSpec(obj: unknown): TransferSpec {
  const spec = rec(rec(obj)['spec']);
  const source = rec(spec['source']);
  const target = rec(spec['target']);
  const ann = rec(source['requiredAnnotations']);
  return {
    source: {
      apiVersion: str(source['apiVersion']),
      kind: str(source['kind']),
      namespace: str(source['namespace']),
      name: str(source['name']),
      ...(Object.keys(ann).length ? { requiredAnnotations: ann } : {}),
    },
    target: { namespace: ptr(target['namespace']), name: ptr(target['name']) },
    parentName: ptr(spec['parentName']),
  };
}

const Kinds = {
  DataVolume: Resources.DataVolume,
  PersistentVolumeClaim: Resources.PersistentVolumeClaim,
} as const;

export function objectTransferValidate(d: ObjectTransferValidateDeps): Admitter {
  return async (req: AdmissionRequest): Promise<AdmissionResponse> => {
    if (req.resource.group !== 'cdi.kubevirt.io' || req.resource.resource !== 'objecttransfers')
      return errored(`unexpected resource: ${req.resource.resource}`);
    if (req.operation !== 'CREATE' && req.operation !== 'UPDATE') return allowed();
    if (!isRecord(req.object)) return errored('the request carries no ObjectTransfer object');
    const spec = typedSpec(req.object);

    if (req.operation === 'UPDATE') {
      if (!isRecord(req.oldObject)) return errored('the UPDATE request carries no old ObjectTransfer object');
      if (!isDeepStrictEqual(spec, typedSpec(req.oldObject)))
        return errored('ObjectTransfer spec is immutable');
      return allowed();
    }

    if (spec.target.namespace === undefined && spec.target.name === undefined)
      return errored('Target namespace and/or target name must be supplied');
    const ns = spec.target.namespace ?? spec.source.namespace;
    const name = spec.target.name ?? spec.source.name;
    const kind = spec.source.kind;
    if (kind !== 'DataVolume' && kind !== 'PersistentVolumeClaim')
      return errored(`Unsupported kind "${kind}"`);
    // client-go refuses an empty name before asking the API server (its Get would otherwise list)
    if (name === '') return errored('resource name may not be empty');

    try {
      await d.kube.get<KubeObject>(Kinds[kind], name, ns);
    } catch (e) {
      if (e instanceof ApiError && e.code === 404) return allowed([ObjectTransferDeprecationWarning]);
      return errored(e instanceof ApiError ? (e.status?.message ?? e.message) : (e as Error).message);
    }
    return errored(`ObjectTransfer target "${ns}/${name}" already exists`);
  };
}
