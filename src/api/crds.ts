// The CRDs this project installs: every kind of upstream's cdi.kubevirt.io/v1beta1 (the forklift.cdi.kubevirt.io
// populators excepted). Names, scopes, short names, categories, printer columns and subresources are upstream's.
// KubeVirt's virt-controller starts informers for several of them as soon as datavolumes exist, and never syncs
// when one is missing, so all are installed together.
import YAML from 'yaml';
import { buildCrd, type CrdDefinition, type JsonSchema } from './crd.ts';
import { DataVolume } from './datavolume.ts';
import { CDIConfig } from './cdiconfig.ts';
import { StorageProfile } from './storageprofile.ts';
import { CDI } from './cdi.ts';
import { DataSource } from './datasource.ts';
import { DataImportCron } from './dataimportcron.ts';
import { VolumeCloneSource, VolumeImportSource, VolumeUploadSource } from './populators.ts';
import { ObjectTransfer } from './objecttransfer.ts';

export const crdDefinitions: readonly CrdDefinition[] = [
  {
    kind: 'DataVolume',
    plural: 'datavolumes',
    singular: 'datavolume',
    scope: 'Namespaced',
    shortNames: ['dv', 'dvs'],
    categories: ['all'],
    schema: DataVolume,
    statusSubresource: true,
    printerColumns: [
      {
        name: 'Phase',
        type: 'string',
        jsonPath: '.status.phase',
        description: 'The phase of the DataVolume',
      },
      {
        name: 'Progress',
        type: 'string',
        jsonPath: '.status.progress',
        description: 'Transfer progress in percent, or N/A when unknown',
      },
      {
        name: 'Restarts',
        type: 'integer',
        jsonPath: '.status.restartCount',
        description: 'How many times the worker pod has restarted',
      },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
  {
    kind: 'CDIConfig',
    plural: 'cdiconfigs',
    singular: 'cdiconfig',
    scope: 'Cluster',
    schema: CDIConfig,
    statusSubresource: false,
  },
  {
    kind: 'StorageProfile',
    plural: 'storageprofiles',
    singular: 'storageprofile',
    scope: 'Cluster',
    schema: StorageProfile,
    statusSubresource: true,
  },
  {
    kind: 'CDI',
    plural: 'cdis',
    singular: 'cdi',
    scope: 'Cluster',
    shortNames: ['cdi', 'cdis'],
    schema: CDI,
    // Upstream's CDI CRD has no status subresource: the operator writes status with the object.
    statusSubresource: false,
    printerColumns: [
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    ],
  },
  {
    kind: 'DataSource',
    plural: 'datasources',
    singular: 'datasource',
    scope: 'Namespaced',
    shortNames: ['das'],
    categories: ['all'],
    schema: DataSource,
    // upstream's DataSource CRD has no status subresource: the controller writes status with the object
    statusSubresource: false,
  },
  {
    kind: 'DataImportCron',
    plural: 'dataimportcrons',
    singular: 'dataimportcron',
    scope: 'Namespaced',
    shortNames: ['dic', 'dics'],
    categories: ['all'],
    schema: DataImportCron,
    statusSubresource: false,
    printerColumns: [
      {
        name: 'Format',
        type: 'string',
        jsonPath: '.status.sourceFormat',
        description: 'How the imported sources are kept: pvc or snapshot',
      },
    ],
  },
  {
    kind: 'VolumeImportSource',
    plural: 'volumeimportsources',
    singular: 'volumeimportsource',
    scope: 'Namespaced',
    schema: VolumeImportSource,
    statusSubresource: false,
  },
  {
    kind: 'VolumeUploadSource',
    plural: 'volumeuploadsources',
    singular: 'volumeuploadsource',
    scope: 'Namespaced',
    schema: VolumeUploadSource,
    statusSubresource: false,
  },
  {
    kind: 'VolumeCloneSource',
    plural: 'volumeclonesources',
    singular: 'volumeclonesource',
    scope: 'Namespaced',
    schema: VolumeCloneSource,
    statusSubresource: false,
  },
  {
    kind: 'ObjectTransfer',
    plural: 'objecttransfers',
    singular: 'objecttransfer',
    scope: 'Cluster',
    shortNames: ['ot', 'ots'],
    schema: ObjectTransfer,
    statusSubresource: true,
    printerColumns: [
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
      {
        name: 'Phase',
        type: 'string',
        jsonPath: '.status.phase',
        description: 'The phase of the ObjectTransfer',
      },
    ],
    // upstream's operator marks it so (pkg/operator/resources/cluster/object-transfer.go)
    deprecationWarning:
      'cdi.kubevirt.io/v1beta1 ObjectTransfers is now deprecated and will be removed in v1.',
  },
];

/** Every CRD object. */
export function crds(): JsonSchema[] {
  return crdDefinitions.map((d) => buildCrd(d));
}

/** The file name in deploy/crds/ and its YAML text, for each CRD. */
export function crdFiles(): { file: string; yaml: string }[] {
  return crdDefinitions.map((d) => ({
    file: `${d.plural}.cdi.kubevirt.io.yaml`,
    yaml: `# Generated by hack/gen-manifests.ts from src/api; do not edit. Run \`npm run gen\`.\n${YAML.stringify(buildCrd(d), { lineWidth: 0 })}`,
  }));
}
