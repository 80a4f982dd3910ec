// CDIConfig (cluster-scoped; a single object named `config`). Its spec is owned by CDI.spec.config.
import Type, { type Static } from 'typebox';
import {
  ConditionFields,
  LocalObjectReference,
  ResourceRequirements,
  RootFields,
  StringEnum,
} from './k8s.ts';

export const FilesystemOverhead = Type.Object(
  {
    global: Type.Optional(
      Type.String({
        pattern: '^(0(?:\\.\\d{1,3})?|1)$',
        description: 'The fraction of a Filesystem volume reserved for the file system, e.g. "0.055".',
      }),
    ),
    storageClass: Type.Optional(
      Type.Unsafe<Record<string, string>>({
        type: 'object',
        additionalProperties: { type: 'string', pattern: '^(0(?:\\.\\d{1,3})?|1)$' },
        description: 'The overhead per storage class, overriding global.',
      }),
    ),
  },
  { description: 'The space reserved for file-system metadata on Filesystem volumes.' },
);
export type FilesystemOverhead = Static<typeof FilesystemOverhead>;

export const ImportProxy = Type.Object(
  {
    HTTPProxy: Type.Optional(Type.String({ description: 'The proxy for http URLs.' })),
    HTTPSProxy: Type.Optional(Type.String({ description: 'The proxy for https URLs.' })),
    noProxy: Type.Optional(Type.String({ description: 'Hosts that bypass the proxy, comma separated.' })),
    trustedCAProxy: Type.Optional(Type.String({ description: 'A ConfigMap with the CA of the proxy.' })),
  },
  { description: 'The proxy the importer uses.' },
);

const tlsProfileField = (description: string) =>
  Type.Optional(Type.Unsafe<Record<string, unknown> | null>({ type: 'object', nullable: true, description }));

export const TLSSecurityProfile = Type.Object(
  {
    type: Type.Optional(
      StringEnum(['Old', 'Intermediate', 'Modern', 'Custom'] as const, { description: 'The profile.' }),
    ),
    old: tlsProfileField('The Old profile (TLS 1.0 and up).'),
    intermediate: tlsProfileField('The Intermediate profile (TLS 1.2 and up).'),
    modern: tlsProfileField('The Modern profile (TLS 1.3).'),
    custom: Type.Optional(
      Type.Unsafe<{ ciphers: string[]; minTLSVersion: string } | null>({
        type: 'object',
        nullable: true,
        description: 'A custom profile.',
        properties: {
          ciphers: {
            type: 'array',
            items: { type: 'string' },
            description: 'Allowed cipher suites (OpenSSL names).',
          },
          minTLSVersion: {
            type: 'string',
            enum: ['VersionTLS10', 'VersionTLS11', 'VersionTLS12', 'VersionTLS13'],
            description: 'The lowest TLS version accepted.',
          },
        },
        required: ['ciphers', 'minTLSVersion'],
      }),
    ),
  },
  { description: 'The TLS settings of the CDI servers (OpenShift TLSSecurityProfile shape).' },
);

export const CDIConfigSpec = Type.Object(
  {
    uploadProxyURLOverride: Type.Optional(Type.String({ description: 'The upload proxy URL to advertise.' })),
    importProxy: Type.Optional(ImportProxy),
    scratchSpaceStorageClass: Type.Optional(
      Type.String({ description: "The storage class of scratch volumes; the target's class when unset." }),
    ),
    podResourceRequirements: Type.Optional(ResourceRequirements),
    featureGates: Type.Optional(Type.Array(Type.String(), { description: 'Feature gates to enable.' })),
    webhookPvcRendering: Type.Optional(
      Type.String({
        description: 'Enabled or Disabled: render labelled PVCs from the StorageProfile in a webhook.',
      }),
    ),
    filesystemOverhead: Type.Optional(FilesystemOverhead),
    preallocation: Type.Optional(Type.Boolean({ description: 'Preallocate disks by default.' })),
    insecureRegistries: Type.Optional(
      Type.Array(Type.String(), {
        description: 'Registries reached over plain HTTP or without TLS verification.',
      }),
    ),
    dataVolumeTTLSeconds: Type.Optional(
      Type.Integer({
        format: 'int32',
        description: 'Delete succeeded DataVolumes after this many seconds (-1: never).',
      }),
    ),
    tlsSecurityProfile: Type.Optional(TLSSecurityProfile),
    imagePullSecrets: Type.Optional(
      Type.Array(LocalObjectReference, { description: 'Secrets used to pull the CDI worker images.' }),
    ),
    logVerbosity: Type.Optional(
      Type.Integer({ format: 'int32', description: 'The log verbosity of the CDI components.' }),
    ),
  },
  { description: 'The user configuration of CDI.' },
);
export type CDIConfigSpec = Static<typeof CDIConfigSpec>;

export const CDIConfigStatus = Type.Object(
  {
    uploadProxyURL: Type.Optional(Type.String({ description: 'The URL of the upload proxy.' })),
    uploadProxyCA: Type.Optional(Type.String({ description: 'The CA certificate of the upload proxy.' })),
    importProxy: Type.Optional(ImportProxy),
    scratchSpaceStorageClass: Type.Optional(
      Type.String({ description: 'The storage class used for scratch volumes.' }),
    ),
    defaultPodResourceRequirements: Type.Optional(ResourceRequirements),
    filesystemOverhead: Type.Optional(FilesystemOverhead),
    preallocation: Type.Optional(Type.Boolean({ description: 'Whether disks are preallocated by default.' })),
    imagePullSecrets: Type.Optional(Type.Array(LocalObjectReference)),
    conditions: Type.Optional(
      Type.Array(
        Type.Object(ConditionFields('The type of the condition: Valid.'), {
          description: 'The state of the configuration.',
        }),
        {
          description:
            'Valid: False (with the reasons) when a spec setting cannot be applied as written and a default is used instead. Not in upstream CDI.',
        },
      ),
    ),
  },
  { description: 'The effective configuration.' },
);
export type CDIConfigStatus = Static<typeof CDIConfigStatus>;

export const CDIConfig = Type.Object(
  {
    ...RootFields('CDIConfig'),
    spec: CDIConfigSpec,
    status: Type.Optional(CDIConfigStatus),
  },
  { description: 'CDIConfig holds the configuration of CDI; the object is named config.' },
);
export type CDIConfig = Static<typeof CDIConfig>;
