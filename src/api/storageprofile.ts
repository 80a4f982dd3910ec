// StorageProfile (cluster-scoped, one per StorageClass with the same name), and the two Kubernetes kinds its
// controller reads: StorageClass and VolumeSnapshotClass. This is the one definition of these shapes; the
// controllers use these types.
import Type, { type Static } from 'typebox';
import { ConditionFields, ObjectMeta, RootFields, StringEnum } from './k8s.ts';

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
    ...RootFields('StorageProfile'),
    spec: StorageProfileSpec,
    status: Type.Optional(StorageProfileStatus),
  },
  { description: 'StorageProfile holds CDI recommendations for the volumes of one StorageClass.' },
);
export type StorageProfile = Static<typeof StorageProfile>;

export type StorageProfileSpec = Static<typeof StorageProfileSpec>;
export type StorageProfileStatus = Static<typeof StorageProfileStatus>;
export type StorageProfileCondition = Static<typeof StorageProfileCondition>;

/** A storage.k8s.io/v1 StorageClass as the API server sends it (only the fields CDI reads are typed). */
export const StorageClass = Type.Object(
  {
    apiVersion: Type.Optional(Type.String()),
    kind: Type.Optional(Type.String()),
    metadata: ObjectMeta,
    provisioner: Type.String(),
    parameters: Type.Optional(Type.Record(Type.String(), Type.String())),
    reclaimPolicy: Type.Optional(Type.String()),
    volumeBindingMode: Type.Optional(Type.String()),
    allowVolumeExpansion: Type.Optional(Type.Boolean()),
    mountOptions: Type.Optional(Type.Array(Type.String())),
  },
  { description: 'A Kubernetes StorageClass.' },
);
export type StorageClass = Static<typeof StorageClass>;

/** A snapshot.storage.k8s.io/v1 VolumeSnapshotClass (the CSI external-snapshotter kind). */
export const VolumeSnapshotClass = Type.Object(
  {
    apiVersion: Type.Optional(Type.String()),
    kind: Type.Optional(Type.String()),
    metadata: ObjectMeta,
    driver: Type.String(),
    deletionPolicy: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { description: 'A CSI VolumeSnapshotClass.' },
);
export type VolumeSnapshotClass = Static<typeof VolumeSnapshotClass>;

/** Where the VolumeSnapshotClass kind lives in the REST API (its CRD comes with the CSI snapshotter). */
export const VolumeSnapshotClassResource = {
  group: 'snapshot.storage.k8s.io',
  version: 'v1',
  kind: 'VolumeSnapshotClass',
  plural: 'volumesnapshotclasses',
  namespaced: false,
} as const;
