// DataImportCron (namespaced): polls a registry (or a PVC) on a cron schedule, imports each new image into a
// DataVolume from `template`, and keeps the DataSource `managedDataSource` pointing to the latest import.
// Field names and required lists follow upstream's types.go; descriptions are ours.
import Type, { type Static } from 'typebox';
import { ConditionFields, RootFields, Time, type ObjectMeta } from './k8s.ts';
import { DataVolume, DataVolumeSourcePVC } from './datavolume.ts';

/**
 * The template's metadata. As in upstream's CRD this is a bare `{type: object}`: the API server keeps no field
 * of it (an embedded ObjectMeta without x-kubernetes-embedded-resource is pruned), so name and labels of the
 * imported DataVolumes come from the controller, not from here.
 */
const TemplateMeta = Type.Unsafe<ObjectMeta>({
  type: 'object',
  description: "The DataVolume's metadata; the API server does not keep its fields (as upstream's).",
});

export const DataImportCronTemplate = Type.Object(
  { ...DataVolume.properties, metadata: Type.Optional(TemplateMeta) },
  {
    description:
      'The DataVolume each import creates; its source must be registry or pvc (no sourceRef, contentType or checkpoints).',
  },
);

export const DataImportCronSpec = Type.Object(
  {
    template: DataImportCronTemplate,
    schedule: Type.String({
      description:
        'When to look for a new image, in cron format ("0 */12 * * *"); empty: only when the cron is annotated by hand.',
    }),
    garbageCollect: Type.Optional(
      Type.String({
        description:
          'Outdated (the default): delete old imports after a new one succeeded; Never: keep them.',
      }),
    ),
    importsToKeep: Type.Optional(
      Type.Integer({
        format: 'int32',
        description: 'How many imports garbage collection keeps (default 3).',
      }),
    ),
    managedDataSource: Type.String({
      description: 'The DataSource in this namespace that this cron points at the latest import.',
    }),
    retentionPolicy: Type.Optional(
      Type.String({
        description:
          'RetainAll (the default): keep the DataVolumes and the DataSource when the cron is deleted; None: delete them.',
      }),
    ),
    serviceAccountName: Type.Optional(
      Type.String({ minLength: 1, description: 'The ServiceAccount that creates the DataVolumes.' }),
    ),
  },
  { description: 'What to import, how often, and which DataSource to keep current.' },
);
export type DataImportCronSpec = Static<typeof DataImportCronSpec>;

export const ImportStatus = Type.Object(
  {
    DataVolumeName: Type.String({ description: 'The DataVolume of the import in progress.' }),
    Digest: Type.String({ description: 'The digest of the image being imported.' }),
  },
  { description: 'An import in progress.' },
);

export const DataImportCronCondition = Type.Object(
  ConditionFields('The type of the condition: Progressing or UpToDate.'),
  { description: 'The state of the DataImportCron at a point in time.' },
);
export type DataImportCronCondition = Static<typeof DataImportCronCondition>;

export const DataImportCronStatus = Type.Object(
  {
    currentImports: Type.Optional(
      Type.Array(ImportStatus, { description: 'The imports in progress (at most one today).' }),
    ),
    lastImportedPVC: Type.Optional(
      Type.Object(DataVolumeSourcePVC.properties, { description: 'The PVC of the last successful import.' }),
    ),
    lastExecutionTimestamp: Type.Optional(Time('When the source was last polled.')),
    lastImportTimestamp: Type.Optional(Time('When the last import succeeded.')),
    sourceFormat: Type.Optional(
      Type.String({
        description: 'How the imported sources are kept: pvc or snapshot (from the StorageProfile).',
      }),
    ),
    conditions: Type.Optional(
      Type.Array(DataImportCronCondition, { description: 'The Progressing and UpToDate conditions.' }),
    ),
  },
  { description: 'The observed state of the DataImportCron.' },
);
export type DataImportCronStatus = Static<typeof DataImportCronStatus>;

export const DataImportCron = Type.Object(
  {
    ...RootFields('DataImportCron'),
    spec: DataImportCronSpec,
    status: Type.Optional(DataImportCronStatus),
  },
  {
    description:
      'A DataImportCron keeps a golden image current: it polls a source on a schedule and imports each new version.',
  },
);
export type DataImportCron = Static<typeof DataImportCron>;
