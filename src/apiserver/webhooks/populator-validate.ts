/**
 * /populator-validate (upstream pkg/apiserver/webhooks/populators-validate.go): VolumeImportSource and
 * VolumeUploadSource, the populator sources a PVC's dataSourceRef names. Both: the name fits a DNS label and the
 * contentType is kubevirt or archive; an import source has exactly one source, checked by the DataVolume webhook's
 * source rules (the messages say "VolumeImport"), and a multi-stage (vddk/imageio with checkpoints) import names its
 * targetClaim. On UPDATE the spec cannot change, except a multi-stage import's checkpoints and finalCheckpoint (that
 * is how it advances). The messages and fields are upstream's.
 *
 *   ValidatingWebhookConfiguration cdi-api-populator-validate: webhook populator-validate.cdi.kubevirt.io, path
 *   /populator-validate, volumeimportsources and volumeuploadsources (cdi.kubevirt.io/v1beta1) CREATE and UPDATE.
 */
import { isDeepStrictEqual } from 'node:util';
import type { VolumeImportSource, VolumeUploadSource } from '../../api/populators.ts';
import { allowed, denied, errored, type Admitter } from '../admission.ts';
import { nameLength, sourceCauses } from './datavolume-validate.ts';

export const PopulatorValidatePath = '/populator-validate';

type Cause = { field?: string; message: string; reason?: string };
type ImportSpec = VolumeImportSource['spec'];
const DNS1035LabelMax = 63;

const contentTypeCauses = (contentType: string | undefined): Cause[] =>
  contentType && contentType !== 'kubevirt' && contentType !== 'archive'
    ? [
        {
          field: 'spec.contentType',
          message: 'ContentType not one of: kubevirt, archive',
          reason: 'FieldValueInvalid',
        },
      ]
    : [];

const isMultiStageImport = (spec: ImportSpec): boolean =>
  (spec.checkpoints?.length ?? 0) > 0 && Boolean(spec.source?.vddk ?? spec.source?.imageio);

export function validateVolumeImportSourceSpec(spec: ImportSpec): Cause[] {
  const ct = contentTypeCauses(spec.contentType);
  if (ct.length > 0) return ct;
  const src = spec.source ?? {};
  const n = Object.values(src).filter((v) => v !== undefined && v !== null).length;
  if (n === 1 && isMultiStageImport(spec) && !spec.targetClaim)
    return [
      {
        field: 'spec.targetClaim',
        message: 'Unable to do multi-stage import without specifying a target claim',
        reason: 'FieldValueInvalid',
      },
    ];
  return sourceCauses(
    { source: src, ...(spec.contentType ? { contentType: spec.contentType as 'kubevirt' | 'archive' } : {}) },
    'spec',
    'VolumeImport',
  );
}

/** The spec without what a multi-stage import may change. */
function fixedPart(spec: ImportSpec): ImportSpec {
  if (!isMultiStageImport(spec)) return spec;
  const { checkpoints: _c, finalCheckpoint: _f, ...rest } = spec;
  return rest;
}

export function populatorValidate(): Admitter {
  return (r) => {
    const resource = r.resource.resource;
    if (
      r.resource.group !== 'cdi.kubevirt.io' ||
      (resource !== 'volumeimportsources' && resource !== 'volumeuploadsources')
    )
      return errored(`unexpected resource: ${resource}`);
    const kind = resource === 'volumeimportsources' ? 'VolumeImportSource' : 'VolumeUploadSource';
    const obj = r.object as (VolumeImportSource | VolumeUploadSource) | undefined;
    if (!obj || typeof obj !== 'object') return errored(`the request has no ${kind}`);
    const spec = (obj.spec ?? {}) as ImportSpec;
    if (r.operation === 'UPDATE') {
      const old = (r.oldObject as { spec?: ImportSpec } | undefined)?.spec ?? {};
      const changed =
        kind === 'VolumeImportSource'
          ? !isDeepStrictEqual(fixedPart(old), fixedPart(spec))
          : !isDeepStrictEqual(old, spec);
      if (changed)
        return denied([
          { field: `${kind}.Spec`, message: `Cannot update ${kind} Spec`, reason: 'FieldValueDuplicate' },
        ]);
    }
    const long = nameLength(obj.metadata?.name ?? r.name, DNS1035LabelMax);
    if (long) return denied([long]);
    const causes =
      kind === 'VolumeImportSource'
        ? validateVolumeImportSourceSpec(spec)
        : contentTypeCauses(spec.contentType);
    return causes.length > 0 ? denied(causes) : allowed();
  };
}
