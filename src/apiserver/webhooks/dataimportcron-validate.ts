/**
 * /dataimportcron-validate (upstream pkg/apiserver/webhooks/dataimportcron-validate.go): a DataImportCron's name and
 * managedDataSource fit a DNS label (its imports are named after them), the template imports from a registry or a
 * PVC and sets none of sourceRef, contentType, checkpoints or finalCheckpoint, the schedule parses as standard cron,
 * importsToKeep is not negative, garbageCollect is Outdated or Never; on UPDATE the spec cannot change. The messages
 * and fields are upstream's. The DataVolume checks of the template (upstream validateDataVolumeSpec) come from the
 * DataVolume webhook when it is given as `validateTemplate`.
 *
 *   ValidatingWebhookConfiguration cdi-api-dataimportcron-validate: webhook dataimportcron-validate.cdi.kubevirt.io,
 *   path /dataimportcron-validate, dataimportcrons (cdi.kubevirt.io/v1beta1) CREATE and UPDATE.
 */
import { isDeepStrictEqual } from 'node:util';
import type { DataImportCron } from '../../api/dataimportcron.ts';
import { parseSchedule } from '../../api/schedule.ts';
import { allowed, denied, errored, type Admitter } from '../admission.ts';
import { DNS1035LabelMaxLength, nameLength } from './datavolume-validate.ts';

export const DataImportCronValidatePath = '/dataimportcron-validate';

type Cause = { field?: string; message: string; reason?: string };
const invalid = (field: string, message: string): Cause[] => [
  { field, message, reason: 'FieldValueInvalid' },
];

export interface DataImportCronValidateOptions {
  /** The DataVolume webhook's spec checks, applied to spec.template.spec (field prefix `Template`). */
  validateTemplate?: (spec: NonNullable<DataImportCron['spec']['template']['spec']>) => Cause[];
}

const labelLength = (name: string | undefined): Cause[] => {
  const c = nameLength(name, DNS1035LabelMaxLength);
  return c ? [c] : [];
};

export function validateDataImportCronSpec(
  spec: DataImportCron['spec'],
  o: DataImportCronValidateOptions = {},
): Cause[] {
  const tpl = spec.template?.spec;
  const source = tpl?.source;
  if (!source || (!source.registry && !source.pvc)) return invalid('spec.Template', 'Missing source');
  if (tpl.sourceRef || tpl.contentType || (tpl.checkpoints?.length ?? 0) > 0 || tpl.finalCheckpoint)
    return invalid(
      'spec.Template',
      'Unsettable fields: SourceRef, ContentType, Checkpoints, FinalCheckpoint',
    );
  const tplCauses = o.validateTemplate?.(tpl) ?? [];
  if (tplCauses.length > 0) return tplCauses;
  if (spec.schedule !== '' && parseSchedule(spec.schedule) !== undefined)
    return invalid('spec.Schedule', 'Illegal cron schedule');
  if (spec.importsToKeep !== undefined && spec.importsToKeep < 0)
    return invalid('spec.ImportsToKeep', 'Illegal ImportsToKeep value');
  if (
    spec.garbageCollect !== undefined &&
    spec.garbageCollect !== 'Never' &&
    spec.garbageCollect !== 'Outdated'
  )
    return invalid('spec.GarbageCollect', 'Illegal GarbageCollect value');
  if (!spec.managedDataSource) return invalid('spec.ManagedDataSource', 'Illegal ManagedDataSource value');
  return labelLength(spec.managedDataSource);
}

export function dataImportCronValidate(o: DataImportCronValidateOptions = {}): Admitter {
  return (r) => {
    if (r.resource.group !== 'cdi.kubevirt.io' || r.resource.resource !== 'dataimportcrons')
      return errored(`unexpected resource: ${r.resource.resource}`);
    const cron = r.object as DataImportCron | undefined;
    if (!cron || typeof cron !== 'object' || !cron.spec) return errored('the request has no DataImportCron');
    const name = labelLength(cron.metadata?.name ?? r.name);
    if (name.length > 0) return denied(name);
    if (r.operation === 'UPDATE') {
      const old = r.oldObject as DataImportCron | undefined;
      if (old && !isDeepStrictEqual(old.spec, cron.spec))
        return denied([
          {
            field: 'DataImportCron.Spec',
            message: 'Cannot update DataImportCron Spec',
            reason: 'FieldValueDuplicate',
          },
        ]);
      return allowed();
    }
    const causes = validateDataImportCronSpec(cron.spec, o);
    return causes.length > 0 ? denied(causes) : allowed();
  };
}
