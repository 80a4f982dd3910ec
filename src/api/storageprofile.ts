// StorageProfile (cluster-scoped, one per StorageClass with the same name).
import Type, { type Static } from 'typebox';
import { ConditionFields, ObjectMeta, StringEnum } from './k8s.ts';

export const CloneStrategies = ['copy', 'snapshot', 'csi-clone'] as const;

export const ClaimPropertySet = Type.Object(
  {
    accessModes: Type.Array(Type.String(), {
      maxItems: 4,
      description: 'Access modes for volumes of this class, in preference order.',
      'x-kubernetes-validations': [
        {
          message: 'Illegal AccessMode',
          rule: "self.all(am, am in ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'])",
        },
      ],
    }),
    volumeMode: StringEnum(['Block', 'Filesystem'] as const, {
      description: 'The volume mode for these access modes.',
    }),
  },
  { description: 'A combination of access modes and volume mode that the storage class supports.' },
);
export type ClaimPropertySet = Static<typeof ClaimPropertySet>;

const profileFields = {
  cloneStrategy: Type.Optional(
    Type.String({ description: 'How to clone volumes of this class: copy, snapshot or csi-clone.' }),
  ),
  claimPropertySets: Type.Optional(
    Type.Array(ClaimPropertySet, {
      maxItems: 8,
      description: 'Supported access/volume mode sets, best first.',
    }),
  ),
  dataImportCronSourceFormat: Type.Optional(
    Type.String({ description: 'How DataImportCron keeps its sources for this class: pvc or snapshot.' }),
  ),
  snapshotClass: Type.Optional(Type.String({ description: 'The VolumeSnapshotClass to use for snapshots.' })),
};

export const StorageProfileSpec = Type.Object(profileFields, {
  description: 'User overrides of what CDI recommends for the storage class.',
});

export const StorageProfileCondition = Type.Object(
  ConditionFields('The type of the condition: Recognized.'),
  {
    description: 'The state of the StorageProfile.',
  },
);

export const StorageProfileStatus = Type.Object(
  {
    storageClass: Type.Optional(Type.String({ description: 'The StorageClass this profile describes.' })),
    provisioner: Type.Optional(Type.String({ description: 'The provisioner of the storage class.' })),
    ...profileFields,
    conditions: Type.Optional(Type.Array(StorageProfileCondition)),
  },
  { description: 'The effective parameters: the spec merged with what CDI knows about the provisioner.' },
);

export const StorageProfile = Type.Object(
  {
    apiVersion: Type.Optional(
      Type.String({ description: 'The versioned schema of this object: cdi.kubevirt.io/v1beta1.' }),
    ),
    kind: Type.Optional(
      Type.String({ description: 'The REST resource this object represents: StorageProfile.' }),
    ),
    metadata: Type.Optional(ObjectMeta),
    spec: StorageProfileSpec,
    status: Type.Optional(StorageProfileStatus),
  },
  { description: 'StorageProfile holds CDI recommendations for the volumes of one StorageClass.' },
);
export type StorageProfile = Static<typeof StorageProfile>;
