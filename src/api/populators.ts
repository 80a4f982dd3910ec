// The volume populator sources (namespaced): a PVC whose spec.dataSourceRef names one of these is filled by
// CDI's populators. Field names and required lists follow upstream's types.go; descriptions are ours.
import Type, { type Static } from 'typebox';
import { RootFields, TypedLocalObjectReference } from './k8s.ts';
import {
  DataVolumeBlankImage,
  DataVolumeCheckpoint,
  DataVolumeSourceGCS,
  DataVolumeSourceHTTP,
  DataVolumeSourceImageIO,
  DataVolumeSourceRegistry,
  DataVolumeSourceS3,
  DataVolumeSourceVDDK,
} from './datavolume.ts';

// Unlike DataVolume.spec.contentType, upstream's populator specs do not restrict the value in the schema.
const contentType = Type.Optional(
  Type.String({ description: 'kubevirt (the default): a disk image; archive: a tar archive to extract.' }),
);
const preallocation = Type.Optional(
  Type.Boolean({ description: 'Preallocate the disk; overrides CDIConfig.spec.preallocation.' }),
);
const emptyStatus = (kind: string) =>
  Type.Optional(Type.Object({}, { description: `The observed state of the ${kind} (empty).` }));

export const ImportSourceType = Type.Object(
  {
    http: Type.Optional(DataVolumeSourceHTTP),
    s3: Type.Optional(DataVolumeSourceS3),
    registry: Type.Optional(DataVolumeSourceRegistry),
    gcs: Type.Optional(DataVolumeSourceGCS),
    blank: Type.Optional(DataVolumeBlankImage),
    imageio: Type.Optional(DataVolumeSourceImageIO),
    vddk: Type.Optional(DataVolumeSourceVDDK),
  },
  { description: 'Where the data comes from; exactly one source must be set.' },
);

export const VolumeImportSource = Type.Object(
  {
    ...RootFields('VolumeImportSource'),
    spec: Type.Object(
      {
        source: Type.Optional(ImportSourceType),
        preallocation,
        contentType,
        targetClaim: Type.Optional(
          Type.String({ description: 'The PVC a multi-stage import fills (needed with checkpoints).' }),
        ),
        checkpoints: Type.Optional(
          Type.Array(DataVolumeCheckpoint, {
            description: 'The stages of a multi-stage import, in order (imageio and vddk).',
          }),
        ),
        finalCheckpoint: Type.Optional(
          Type.Boolean({ description: 'True when the last checkpoint in the list is the final one.' }),
        ),
      },
      { description: 'What to import into the PVCs that name this source.' },
    ),
    status: emptyStatus('VolumeImportSource'),
  },
  {
    description:
      'A VolumeImportSource fills a PVC that names it in spec.dataSourceRef with data imported from a URL, a registry or a hypervisor.',
  },
);
export type VolumeImportSource = Static<typeof VolumeImportSource>;

export const VolumeUploadSource = Type.Object(
  {
    ...RootFields('VolumeUploadSource'),
    spec: Type.Object({ contentType, preallocation }, { description: 'How to store the uploaded data.' }),
    status: emptyStatus('VolumeUploadSource'),
  },
  {
    description:
      'A VolumeUploadSource fills a PVC that names it in spec.dataSourceRef with data uploaded through the upload proxy.',
  },
);
export type VolumeUploadSource = Static<typeof VolumeUploadSource>;

export const VolumeCloneSource = Type.Object(
  {
    ...RootFields('VolumeCloneSource'),
    spec: Type.Object(
      {
        source: Type.Object(TypedLocalObjectReference.properties, {
          description:
            'The PersistentVolumeClaim or VolumeSnapshot (apiGroup snapshot.storage.k8s.io) to clone, in this namespace.',
          'x-kubernetes-map-type': 'atomic',
        }),
        preallocation,
        priorityClassName: Type.Optional(
          Type.String({ description: 'The PriorityClass of the clone pods.' }),
        ),
      },
      { description: 'What to clone into the PVCs that name this source.' },
    ),
  },
  {
    description:
      'A VolumeCloneSource fills a PVC that names it in spec.dataSourceRef with a copy of another PVC or snapshot, of any storage class or volume mode.',
  },
);
export type VolumeCloneSource = Static<typeof VolumeCloneSource>;
