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
import type { VolumeImportSource, VolumeUploadSource } from '../../api/populators.ts';
import { allowed, denied, errored, type Admitter } from '../admission.ts';
import {
  contentTypeCauses,
  DNS1035LabelMaxLength,
  isMultiStageSpec,
  nameLength,
  sourceCauses,
  sourceCount,
  specChangeAllowed,
} from './datavolume-validate.ts';

export const PopulatorValidatePath = '/populator-validate';

type ImportSpec = VolumeImportSource['spec'];

/** upstream validateVolumeImportSourceSpec, in its order: content type, one source, targetClaim, the source's rules. */
export function validateVolumeImportSourceSpec(spec: ImportSpec): ReturnType<typeof sourceCauses> {
  const ct = contentTypeCauses(spec.contentType, 'spec');
  if (ct) return ct;
  const src = spec.source ?? {};
  if (sourceCount(src) === 1 && isMultiStageSpec(spec) && !spec.targetClaim)
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
      // an upload source has no checkpoints, so only an import source can have a multi-stage change allowed
      if (!specChangeAllowed(spec, old))
        return denied([
          { field: `${kind}.Spec`, message: `Cannot update ${kind} Spec`, reason: 'FieldValueDuplicate' },
        ]);
    }
    const long = nameLength(obj.metadata?.name ?? r.name, DNS1035LabelMaxLength);
    if (long) return denied([long]);
    const causes =
      kind === 'VolumeImportSource'
        ? validateVolumeImportSourceSpec(spec)
        : (contentTypeCauses(spec.contentType, 'spec') ?? []);
    return causes.length > 0 ? denied(causes) : allowed();
  };
}
