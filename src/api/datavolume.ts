// DataVolume (cdi.kubevirt.io/v1beta1): field names, types and required lists follow upstream's
// staging/src/kubevirt.io/containerized-data-importer-api/pkg/apis/core/v1beta1/types.go.
import Type, { type Static } from 'typebox';
import {
  ConditionFields,
  LabelSelector,
  PersistentVolumeClaimSpec,
  RootFields,
  StringEnum,
  TypedLocalObjectReference,
  TypedObjectReference,
  VolumeResourceRequirements,
} from './k8s.ts';

const secretRef = (what: string) =>
  Type.Optional(
    Type.String({ description: `The name of a Secret in the DataVolume's namespace with ${what}.` }),
  );
const certConfigMap = Type.Optional(
  Type.String({
    description: 'The name of a ConfigMap with the CA certificates (PEM) that sign the server certificate.',
  }),
);
const insecureSkipVerify = Type.Optional(
  Type.Boolean({ description: 'Skip verification of the server certificate (not recommended).' }),
);
/**
 * `checksum` on the s3, gcs and registry sources: an extension beyond upstream v1.66, which has it on http only.
 * Additive (upstream's clients never send it); the same annotation, cdi.kubevirt.io/storage.import.checksum,
 * carries it to the importer, which verifies it for every source that streams its bytes (docs/api.md,
 * docs/importer.md "Checksums").
 */
const extensionChecksum = (what: string) =>
  Type.Optional(
    Type.String({
      description: `The expected digest of ${what}, as "md5|sha1|sha256|sha512:<hex>"; the import fails when it differs. Not in upstream CDI (which has it for http only).`,
    }),
  );
const namespacedName = (what: string) =>
  Type.Object(
    {
      namespace: Type.String({ description: `The namespace of the source ${what}.` }),
      name: Type.String({ description: `The name of the source ${what}.` }),
    },
    { description: `Clone from a ${what}.` },
  );

export const DataVolumeSourceHTTP = Type.Object(
  {
    url: Type.String({ description: 'The URL of the image (http or https).' }),
    secretRef: secretRef('keys accessKeyId (user name) and secretKey (password) for basic authentication'),
    certConfigMap,
    extraHeaders: Type.Optional(
      Type.Array(Type.String(), { description: 'Extra HTTP headers, each as "Name: value".' }),
    ),
    secretExtraHeaders: Type.Optional(
      Type.Array(Type.String(), {
        description:
          'Names of Secrets whose every data value is an extra HTTP header line; use for sensitive headers.',
      }),
    ),
    checksum: Type.Optional(
      Type.String({
        description: 'The expected digest of the downloaded file, as "md5|sha1|sha256|sha512:<hex>".',
      }),
    ),
    insecureSkipVerify,
  },
  { description: 'Import an image from an HTTP or HTTPS URL.' },
);
export type DataVolumeSourceHTTP = Static<typeof DataVolumeSourceHTTP>;

export const DataVolumeSourceS3 = Type.Object(
  {
    url: Type.String({
      description: 'The URL of the object, e.g. https://s3.example.com/bucket/disk.qcow2.',
    }),
    secretRef: secretRef('keys accessKeyId and secretKey'),
    certConfigMap,
    checksum: extensionChecksum('the object as stored (before any decompression)'),
  },
  { description: 'Import an image from an S3 (path-style) object store.' },
);

export const DataVolumeSourceGCS = Type.Object(
  {
    url: Type.String({ description: 'The object, as gs://bucket/object or an https URL.' }),
    secretRef: secretRef('a Google service-account key file; anonymous access when unset'),
    checksum: extensionChecksum('the object as stored (before any decompression)'),
  },
  { description: 'Import an image from Google Cloud Storage.' },
);

export const DataVolumeSourceRegistry = Type.Object(
  {
    url: Type.Optional(
      Type.String({
        description: 'The image, as docker://registry/repo:tag or oci-archive://path. Excludes imageStream.',
      }),
    ),
    imageStream: Type.Optional(
      Type.String({
        description: 'The name of an OpenShift ImageStream (needs pullMethod node). Excludes url.',
      }),
    ),
    pullMethod: Type.Optional(
      Type.String({
        description: 'pod (the default): the importer pulls the image; node: the kubelet pulls it.',
      }),
    ),
    secretRef: Type.Optional(Type.String({ description: 'The name of a Secret with registry credentials.' })),
    certConfigMap: Type.Optional(
      Type.String({ description: 'The name of a ConfigMap with the registry CA certificates.' }),
    ),
    platform: Type.Optional(
      Type.Object(
        {
          architecture: Type.Optional(
            Type.String({
              description: 'The architecture of the image to pull from a multi-arch image index.',
            }),
          ),
        },
        { description: 'Which platform variant of the image to import.' },
      ),
    ),
    checksum: extensionChecksum(
      'the disk file under /disk/ as stored in the image (out of its layer, before the file itself is decompressed: the digest of disk.img.xz, not of the disk)',
    ),
  },
  { description: 'Import a disk from a container image (the single file under /disk/).' },
);

export const DataVolumeSourcePVC = namespacedName('PersistentVolumeClaim');
export const DataVolumeSourceSnapshot = namespacedName('VolumeSnapshot');

export const DataVolumeSourceUpload = Type.Object(
  {},
  { description: 'Wait for the data to be uploaded through the upload proxy.' },
);
export const DataVolumeBlankImage = Type.Object({}, { description: 'Create an empty raw disk.' });

export const DataVolumeSourceImageIO = Type.Object(
  {
    url: Type.String({ description: 'The URL of the oVirt engine API.' }),
    diskId: Type.String({ description: 'The ID of the disk to import.' }),
    secretRef: secretRef('keys accessKeyId and secretKey for the engine'),
    certConfigMap,
    insecureSkipVerify,
  },
  { description: 'Import a disk from oVirt/RHV through ImageIO.' },
);

export const DataVolumeSourceVDDK = Type.Object(
  {
    url: Type.Optional(Type.String({ description: 'The URL of the vCenter or ESXi host.' })),
    uuid: Type.Optional(Type.String({ description: 'The UUID of the virtual machine.' })),
    backingFile: Type.Optional(
      Type.String({ description: 'The path of the virtual disk file in the datastore.' }),
    ),
    thumbprint: Type.Optional(
      Type.String({ description: 'The SSL/TLS thumbprint of the host certificate.' }),
    ),
    secretRef: secretRef('the vCenter credentials'),
    certConfigMap: Type.Optional(
      Type.String({ description: 'The name of a ConfigMap with the vCenter CA certificates.' }),
    ),
    initImageURL: Type.Optional(
      Type.String({ description: 'A container image that provides the VDDK library.' }),
    ),
    extraArgs: Type.Optional(
      Type.String({
        description: 'The name of a ConfigMap whose key vddk-config-file holds extra VDDK options.',
      }),
    ),
  },
  { description: 'Import a disk from VMware through VDDK.' },
);

export const DataVolumeSource = Type.Object(
  {
    http: Type.Optional(DataVolumeSourceHTTP),
    s3: Type.Optional(DataVolumeSourceS3),
    gcs: Type.Optional(DataVolumeSourceGCS),
    registry: Type.Optional(DataVolumeSourceRegistry),
    pvc: Type.Optional(DataVolumeSourcePVC),
    upload: Type.Optional(DataVolumeSourceUpload),
    blank: Type.Optional(DataVolumeBlankImage),
    imageio: Type.Optional(DataVolumeSourceImageIO),
    vddk: Type.Optional(DataVolumeSourceVDDK),
    snapshot: Type.Optional(DataVolumeSourceSnapshot),
  },
  { description: 'Where the data comes from; exactly one source must be set.' },
);
export type DataVolumeSource = Static<typeof DataVolumeSource>;

export const DataVolumeSourceRef = Type.Object(
  {
    kind: Type.String({ description: 'The kind of the source reference; only DataSource is supported.' }),
    namespace: Type.Optional(
      Type.String({ description: "The namespace of the DataSource; the DataVolume's own when unset." }),
    ),
    name: Type.String({ description: 'The name of the DataSource.' }),
  },
  {
    description: 'An indirect source: a DataSource that names the PVC or snapshot to clone. Excludes source.',
  },
);

export const StorageSpec = Type.Object(
  {
    accessModes: Type.Optional(
      // Upstream's StorageSpec list has no list-type marker, unlike the PVC spec's.
      Type.Array(Type.String(), {
        description: 'The desired access modes; taken from the StorageProfile when unset.',
      }),
    ),
    selector: Type.Optional(LabelSelector),
    resources: Type.Optional(VolumeResourceRequirements),
    volumeName: Type.Optional(Type.String({ description: 'The PersistentVolume to bind to.' })),
    storageClassName: Type.Optional(
      Type.String({ description: 'The StorageClass; the default (virt) storage class when unset.' }),
    ),
    volumeMode: Type.Optional(
      Type.String({
        description: 'Block, Filesystem or FromStorageProfile; taken from the StorageProfile when unset.',
      }),
    ),
    dataSource: Type.Optional(TypedLocalObjectReference),
    dataSourceRef: Type.Optional(TypedObjectReference),
  },
  {
    description:
      'The volume to create; unset fields are filled from the StorageProfile, and the filesystem overhead is added to the size.',
  },
);
export type StorageSpec = Static<typeof StorageSpec>;

export const DataVolumeCheckpoint = Type.Object(
  {
    previous: Type.String({ description: 'The identifier of the snapshot of the previous checkpoint.' }),
    current: Type.String({ description: 'The identifier of the snapshot created for this checkpoint.' }),
  },
  { description: 'One stage of a multi-stage (warm) import.' },
);

export const ContentTypes = ['kubevirt', 'archive'] as const;
export const DataVolumeContentType = StringEnum(ContentTypes, {
  description:
    'kubevirt (the default): a disk image; archive: a tar archive extracted into a Filesystem volume.',
});
export type DataVolumeContentType = Static<typeof DataVolumeContentType>;

export const DataVolumeSpec = Type.Object(
  {
    source: Type.Optional(DataVolumeSource),
    sourceRef: Type.Optional(DataVolumeSourceRef),
    pvc: Type.Optional(PersistentVolumeClaimSpec),
    storage: Type.Optional(StorageSpec),
    priorityClassName: Type.Optional(Type.String({ description: 'The PriorityClass of the worker pods.' })),
    serviceAccountName: Type.Optional(
      Type.String({ description: 'The ServiceAccount the worker pods run as.' }),
    ),
    contentType: Type.Optional(DataVolumeContentType),
    checkpoints: Type.Optional(
      Type.Array(DataVolumeCheckpoint, {
        description: 'The stages of a multi-stage import, in order (imageio and vddk).',
      }),
    ),
    finalCheckpoint: Type.Optional(
      Type.Boolean({ description: 'True when the last checkpoint in the list is the final one.' }),
    ),
    preallocation: Type.Optional(
      Type.Boolean({ description: 'Preallocate the disk; overrides CDIConfig.spec.preallocation.' }),
    ),
  },
  { description: 'What to put into the volume and what volume to create.' },
);
export type DataVolumeSpec = Static<typeof DataVolumeSpec>;

export const DataVolumeCondition = Type.Object(
  ConditionFields('The type of the condition: Ready, Bound or Running.'),
  {
    description: 'The state of the DataVolume at a point in time.',
  },
);
export type DataVolumeCondition = Static<typeof DataVolumeCondition>;

export const DataVolumeStatus = Type.Object(
  {
    claimName: Type.Optional(Type.String({ description: 'The name of the PVC that holds the data.' })),
    phase: Type.Optional(
      Type.String({ description: 'The phase of the DataVolume, e.g. ImportInProgress or Succeeded.' }),
    ),
    progress: Type.Optional(
      Type.String({ description: 'The transfer progress as a percentage ("45.10%"), or N/A when unknown.' }),
    ),
    restartCount: Type.Optional(
      Type.Integer({
        format: 'int32',
        description: 'How many times the pod populating the DataVolume has restarted.',
      }),
    ),
    conditions: Type.Optional(
      Type.Array(DataVolumeCondition, { description: 'The Ready, Bound and Running conditions.' }),
    ),
  },
  { description: 'The observed state of the DataVolume.' },
);
export type DataVolumeStatus = Static<typeof DataVolumeStatus>;

export const DataVolume = Type.Object(
  {
    ...RootFields('DataVolume'),
    spec: DataVolumeSpec,
    status: Type.Optional(DataVolumeStatus),
  },
  {
    description:
      'A DataVolume populates a PersistentVolumeClaim with a disk image, for use by a virtual machine.',
  },
);
export type DataVolume = Static<typeof DataVolume>;
