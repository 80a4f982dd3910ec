// DataSource (namespaced): a named pointer to the PVC or VolumeSnapshot that DataVolumes clone from
// (`DataVolume.spec.sourceRef`), or to another DataSource (a chain of depth at most 1). Field names and
// required lists follow upstream's types.go; descriptions are ours.
import Type, { type Static } from 'typebox';
import { ConditionFields, RootFields } from './k8s.ts';
import { DataVolumeSourcePVC, DataVolumeSourceSnapshot } from './datavolume.ts';

export const DataSourceRefSourceDataSource = Type.Object(
  {
    namespace: Type.String({ description: 'The namespace of the DataSource this one points to.' }),
    name: Type.String({ description: 'The name of the DataSource this one points to.' }),
  },
  {
    description:
      'Another DataSource, resolved to its PVC or snapshot; that DataSource must not point to a third one.',
  },
);

export const DataSourceSource = Type.Object(
  {
    pvc: Type.Optional(DataVolumeSourcePVC),
    snapshot: Type.Optional(DataVolumeSourceSnapshot),
    dataSource: Type.Optional(DataSourceRefSourceDataSource),
  },
  { description: 'What the DataSource points to: one of pvc, snapshot or dataSource.' },
);
export type DataSourceSource = Static<typeof DataSourceSource>;

export const DataSourceCondition = Type.Object(ConditionFields('The type of the condition: Ready.'), {
  description: 'The state of the DataSource at a point in time.',
});
export type DataSourceCondition = Static<typeof DataSourceCondition>;

export const DataSource = Type.Object(
  {
    ...RootFields('DataSource'),
    spec: Type.Object({ source: DataSourceSource }, { description: 'The source this DataSource names.' }),
    status: Type.Optional(
      Type.Object(
        {
          source: Type.Optional(
            Type.Object(DataSourceSource.properties, {
              description:
                'The source in effect, with a dataSource reference resolved to its pvc or snapshot.',
            }),
          ),
          conditions: Type.Optional(
            Type.Array(DataSourceCondition, {
              description: 'Ready: True when the source exists and is ready to be cloned.',
            }),
          ),
        },
        { description: 'The observed state of the DataSource.' },
      ),
    ),
  },
  {
    description:
      'A DataSource names a PVC or VolumeSnapshot (a "golden image") that DataVolumes clone through spec.sourceRef.',
  },
);
export type DataSource = Static<typeof DataSource>;
