// What CDI knows about storage provisioners: access/volume modes in preference order, the advised clone strategy
// and DataImportCron source format, minimum volume sizes. Ported as data from upstream CDI v1.66,
// pkg/storagecapabilities/storagecapabilities.go (kubevirt/containerized-data-importer), entry for entry and in
// upstream's order; keep it in step with that file. Some provisioners are told apart by StorageClass parameters:
// provisionerKey() maps a class to its key the way upstream's storageClassToProvisionerKeyMapper does.
//
// Only real, shipped provisioners belong here. A provisioner this table does not know (the local test cluster's
// hostpath.csi.cdi.dev among them) gets its claim property sets from its StorageClass's
// `cdi.kubevirt.io/claim-property-sets` annotation or from the StorageProfile's spec.
import type { ClaimPropertySet, StorageClass } from '../../api/storageprofile.ts';

type AccessMode = 'ReadWriteOnce' | 'ReadOnlyMany' | 'ReadWriteMany';
type VolumeMode = 'Block' | 'Filesystem';
/** One capability: an access mode with a volume mode (upstream StorageCapabilities). */
export type Capability = readonly [AccessMode, VolumeMode];

const rwo = 'ReadWriteOnce';
const rox = 'ReadOnlyMany';
const rwx = 'ReadWriteMany';
const block = 'Block';
const file = 'Filesystem';

/** kubernetes.io/no-provisioner: capabilities come from the class's PersistentVolumes. */
export const NoProvisioner = 'kubernetes.io/no-provisioner';
/** A class whose parameters the key mappers cannot place (upstream's "UNKNOWN" key). */
const Unknown = 'UNKNOWN';

const rbd: Capability[] = [
  [rwx, block],
  [rwo, block],
  [rwo, file],
];
const allButRwxFile: Capability[] = [
  [rwx, block],
  [rwo, block],
  [rwo, file],
  [rox, block],
  [rox, file],
];
const dellPowerMax: Capability[] = [
  [rwx, block],
  [rwo, block],
  [rwo, file],
  [rox, block],
];
const dellPowerFlex = allButRwxFile;
const dellPowerStore = dellPowerMax;
const allFs: Capability[] = [
  [rwx, file],
  [rwo, file],
  [rox, file],
];
const rwoBlockAndFs: Capability[] = [
  [rwo, block],
  [rwo, file],
];
const rwxBlockRwoBoth: Capability[] = [
  [rwx, block],
  [rwo, block],
  [rwo, file],
];
const rwxRwoFile: Capability[] = [
  [rwx, file],
  [rwo, file],
];

/** upstream CapabilitiesByProvisionerKey */
export const capabilitiesByProvisionerKey: Readonly<Record<string, readonly Capability[]>> = {
  // hostpath-provisioner
  'kubevirt.io.hostpath-provisioner': [[rwo, file]],
  'kubevirt.io.hostpath-provisioner/overlay': [[rwx, file]],
  'kubevirt.io/hostpath-provisioner': [[rwo, file]],
  'k8s.io/minikube-hostpath': [[rwo, file]],
  // nfs-csi
  'nfs.csi.k8s.io': [[rwx, file]],
  'k8s-sigs.io/nfs-subdir-external-provisioner': [[rwx, file]],
  // ceph-rbd
  'kubernetes.io/rbd': rbd,
  'rbd.csi.ceph.com': rbd,
  'rook-ceph.rbd.csi.ceph.com': rbd,
  'openshift-storage.rbd.csi.ceph.com': rbd,
  // ceph-fs
  'cephfs.csi.ceph.com': rwxRwoFile,
  'rook-ceph.cephfs.csi.ceph.com': rwxRwoFile,
  'openshift-storage.cephfs.csi.ceph.com': rwxRwoFile,
  // LINSTOR
  'linstor.csi.linbit.com': allButRwxFile,
  // DELL Unity XT
  'csi-unity.dellemc.com': allButRwxFile,
  'csi-unity.dellemc.com/nfs': allFs,
  // DELL PowerFlex
  'csi-vxflexos.dellemc.com': dellPowerFlex,
  'csi-vxflexos.dellemc.com/nfs': allFs,
  // DELL PowerScale
  'csi-isilon.dellemc.com': allFs,
  // DELL PowerMax
  'csi-powermax.dellemc.com': dellPowerMax,
  'csi-powermax.dellemc.com/nfs': allFs,
  // DELL PowerStore
  'csi-powerstore.dellemc.com': dellPowerStore,
  'csi-powerstore.dellemc.com/nfs': allFs,
  // storageos
  'kubernetes.io/storageos': [[rwo, file]],
  storageos: [[rwo, file]],
  // AWSElasticBlockStore
  'kubernetes.io/aws-ebs': [[rwo, block]],
  'ebs.csi.aws.com': [[rwo, block]],
  'ebs.csi.aws.com/io1': [[rwo, block]],
  'ebs.csi.aws.com/io2': rwxBlockRwoBoth,
  'ebs.csi.aws.com/gp': [[rwo, block]],
  // AWSElasticFileSystem
  'efs.csi.aws.com': rwxRwoFile,
  // Azure disk
  'kubernetes.io/azure-disk': [[rwo, block]],
  'disk.csi.azure.com': [[rwo, block]],
  // Azure file
  'kubernetes.io/azure-file': [[rwx, file]],
  'file.csi.azure.com': [[rwx, file]],
  // GCE Persistent Disk
  'kubernetes.io/gce-pd': rwoBlockAndFs,
  'pd.csi.storage.gke.io': rwoBlockAndFs,
  'pd.csi.storage.gke.io/hyperdisk': rwxBlockRwoBoth,
  // Hitachi
  'hspc.csi.hitachi.com': rwxBlockRwoBoth,
  // HPE
  'csi.hpe.com': rwxBlockRwoBoth,
  // IBM HCI/GPFS2 (Spectrum Scale / Spectrum Fusion)
  'spectrumscale.csi.ibm.com': rwxRwoFile,
  // IBM block arrays (FlashSystem)
  'block.csi.ibm.com': rwxBlockRwoBoth,
  // IBM VPC Block CSI
  'vpc.block.csi.ibm.io': rwoBlockAndFs,
  // IBM VPC File CSI
  'vpc.file.csi.ibm.io': rwxRwoFile,
  'vpc.file.csi.ibm.io/dp2': rwxRwoFile,
  'vpc.file.csi.ibm.io/dp2-rwo': [[rwo, file]],
  'vpc.file.csi.ibm.io/rfs': rwxRwoFile,
  'vpc.file.csi.ibm.io/rfs-rwo': [[rwo, file]],
  // Portworx in-tree CSI
  'kubernetes.io/portworx-volume/nfs': rwxRwoFile,
  'kubernetes.io/portworx-volume': [
    [rwx, block],
    [rwx, file],
    [rwo, block],
    [rwo, file],
  ],
  // Portworx CSI
  'pxd.portworx.com/nfs': rwxRwoFile,
  'pxd.portworx.com': [
    [rwx, block],
    [rwx, file],
    [rwo, block],
    [rwo, file],
  ],
  'pxd.portworx.com/pure_block': rwxBlockRwoBoth,
  'pxd.portworx.com/pure_fa_file': rwxRwoFile,
  // Trident
  'csi.trident.netapp.io/ontap-nas': rwxRwoFile,
  'csi.trident.netapp.io/ontap-san': [[rwx, block]],
  'csi.trident.netapp.io/gcnv-flex': rwxRwoFile,
  // topolvm
  'topolvm.cybozu.com': rwoBlockAndFs,
  'topolvm.io': rwoBlockAndFs,
  // OpenStack Cinder
  'cinder.csi.openstack.org': rwoBlockAndFs,
  // OpenStack manila
  'manila.csi.openstack.org': [[rwx, file]],
  // ovirt csi
  'csi.ovirt.org': rwoBlockAndFs,
  // Infinidat
  'infinibox-csi-driver/iscsiorfibrechannel': rwxBlockRwoBoth,
  'infinibox-csi-driver/nvme': rwxBlockRwoBoth,
  'infinibox-csi-driver/nfs': rwxRwoFile,
  // vSphere
  'csi.vsphere.vmware.com': rwoBlockAndFs,
  'csi.vsphere.vmware.com/nfs': [
    [rwx, file],
    [rwo, block],
    [rwo, file],
  ],
  // huawei
  'csi.huawei.com': allButRwxFile,
  'csi.huawei.com/nfs': allFs,
  // KubeSAN
  'kubesan.gitlab.io': [
    [rwx, block],
    [rox, block],
    [rwo, block],
    [rwo, file],
  ],
  // Longhorn
  'driver.longhorn.io': [[rwo, block]],
  'driver.longhorn.io/migratable': [
    [rwx, block],
    [rwo, block],
  ],
  'driver.longhorn.io/nfs': rwxRwoFile,
  'driver.longhorn.io/fs': [[rwo, file]],
  // Oracle cloud
  'blockvolume.csi.oraclecloud.com': rwxBlockRwoBoth,
  // Synology
  'csi.san.synology.com/iscsi': rwxBlockRwoBoth,
  'csi.san.synology.com/nfs': rwxRwoFile,
  'csi.san.synology.com/smb': rwxRwoFile,
  // DirectPV
  'directpv-min-io': [[rwo, file]],
};

/** upstream SourceFormatsByProvisionerKey: these scale better cloning DataImportCron sources from one snapshot. */
export const sourceFormatByProvisionerKey: Readonly<Record<string, 'pvc' | 'snapshot'>> = {
  'rook-ceph.rbd.csi.ceph.com': 'snapshot',
  'openshift-storage.rbd.csi.ceph.com': 'snapshot',
  'csi.trident.netapp.io/ontap-nas': 'snapshot',
  'csi.trident.netapp.io/ontap-san': 'snapshot',
  'csi.trident.netapp.io/gcnv-flex': 'snapshot',
  'pd.csi.storage.gke.io': 'snapshot',
  'pd.csi.storage.gke.io/hyperdisk': 'snapshot',
  'vpc.file.csi.ibm.io': 'snapshot',
  'vpc.file.csi.ibm.io/dp2': 'snapshot',
  'vpc.file.csi.ibm.io/dp2-rwo': 'snapshot',
  'vpc.file.csi.ibm.io/rfs': 'snapshot',
  'vpc.file.csi.ibm.io/rfs-rwo': 'snapshot',
};

export type CloneStrategy = 'copy' | 'snapshot' | 'csi-clone';

/** upstream CloneStrategyByProvisionerKey ("copy" is upstream's CloneStrategyHostAssisted) */
export const cloneStrategyByProvisionerKey: Readonly<Record<string, CloneStrategy>> = {
  'csi-vxflexos.dellemc.com': 'csi-clone',
  'csi-isilon.dellemc.com': 'csi-clone',
  'csi-powermax.dellemc.com': 'csi-clone',
  'csi-powerstore.dellemc.com': 'copy',
  'hspc.csi.hitachi.com': 'csi-clone',
  'csi.hpe.com': 'csi-clone',
  'spectrumscale.csi.ibm.com': 'csi-clone',
  'block.csi.ibm.com': 'csi-clone',
  'vpc.block.csi.ibm.io': 'copy',
  'vpc.file.csi.ibm.io': 'snapshot',
  'vpc.file.csi.ibm.io/dp2': 'snapshot',
  'vpc.file.csi.ibm.io/dp2-rwo': 'snapshot',
  'vpc.file.csi.ibm.io/rfs': 'snapshot',
  'vpc.file.csi.ibm.io/rfs-rwo': 'snapshot',
  'rbd.csi.ceph.com': 'csi-clone',
  'rook-ceph.rbd.csi.ceph.com': 'csi-clone',
  'openshift-storage.rbd.csi.ceph.com': 'csi-clone',
  'cephfs.csi.ceph.com': 'csi-clone',
  'rook-ceph.cephfs.csi.ceph.com': 'csi-clone',
  'openshift-storage.cephfs.csi.ceph.com': 'csi-clone',
  'pxd.portworx.com/nfs': 'csi-clone',
  'pxd.portworx.com': 'csi-clone',
  'pxd.portworx.com/pure_block': 'csi-clone',
  'pxd.portworx.com/pure_fa_file': 'csi-clone',
  'topolvm.cybozu.com': 'copy',
  'topolvm.io': 'copy',
  'infinibox-csi-driver/iscsiorfibrechannel': 'csi-clone',
  'infinibox-csi-driver/nvme': 'csi-clone',
  'infinibox-csi-driver/nfs': 'csi-clone',
  'csi.trident.netapp.io/ontap-nas': 'snapshot',
  'csi.trident.netapp.io/ontap-san': 'snapshot',
  'csi.trident.netapp.io/gcnv-flex': 'snapshot',
  'kubesan.gitlab.io': 'csi-clone',
  'pd.csi.storage.gke.io': 'snapshot',
  'pd.csi.storage.gke.io/hyperdisk': 'snapshot',
  'csi.san.synology.com/iscsi': 'csi-clone',
  'csi.san.synology.com/nfs': 'csi-clone',
  'csi.san.synology.com/smb': 'csi-clone',
  'blockvolume.csi.oraclecloud.com': 'csi-clone',
};

/** upstream MinimumSupportedPVCSizeByProvisionerKey */
export const minimumSupportedPvcSizeByProvisionerKey: Readonly<Record<string, string>> = {
  'pd.csi.storage.gke.io/hyperdisk': '4Gi',
  // https://aws.amazon.com/ebs/volume-types
  'ebs.csi.aws.com/io1': '4Gi',
  'ebs.csi.aws.com/io2': '4Gi',
  'ebs.csi.aws.com/gp': '1Gi',
  'csi.san.synology.com/iscsi': '1Gi',
  'csi.san.synology.com/nfs': '1Gi',
  'csi.san.synology.com/smb': '1Gi',
  // https://cloud.google.com/netapp/volumes/docs/discover/service-levels
  'csi.trident.netapp.io/gcnv-flex': '1Gi',
  // IBM VPC File Storage
  'vpc.file.csi.ibm.io/rfs': '1Gi',
  'vpc.file.csi.ibm.io/rfs-rwo': '1Gi',
  'vpc.file.csi.ibm.io/dp2': '10Gi',
  'vpc.file.csi.ibm.io/dp2-rwo': '10Gi',
  // HPE XP8 (OEM of Hitachi VSP) and Hitachi HSPC enforce a minimum LDEV size
  'xspc.csi.hpe.com': '1Gi',
  'hspc.csi.hitachi.com': '1Gi',
};

/** upstream UseReadWriteOnceForDataImportCronByProvisionerKey */
export const useReadWriteOnceForDataImportCron: ReadonlySet<string> = new Set([
  'pd.csi.storage.gke.io',
  'pd.csi.storage.gke.io/hyperdisk',
]);

/** upstream UnsupportedProvisioners: known not to work with CDI (object buckets, Stork snapshots). */
export const unsupportedProvisioners: ReadonlySet<string> = new Set([
  'openshift-storage.ceph.rook.io/bucket',
  'rook-ceph.ceph.rook.io/bucket',
  'openshift-storage.noobaa.io/obc',
  'stork-snapshot',
  NoProvisioner,
]);

/**
 * upstream dataImportCronVSCMatcherByProvisionerKey: the VolumeSnapshotClass parameters that make a class fit for
 * DataImportCron snapshots (GKE: image snapshots).
 */
export const dataImportCronSnapshotClassParameters: Readonly<
  Record<string, Readonly<Record<string, string>>>
> = {
  'pd.csi.storage.gke.io': { 'snapshot-type': 'images' },
  'pd.csi.storage.gke.io/hyperdisk': { 'snapshot-type': 'images' },
};

const param = (sc: StorageClass, name: string): string => sc.parameters?.[name] ?? '';
const fsType = (sc: StorageClass): string => param(sc, 'csi.storage.k8s.io/fstype').toLowerCase();
const nfsv3NoLock = (sc: StorageClass): boolean => {
  const opts = param(sc, 'sharedv4_mount_options').split(',');
  return opts.includes('vers=3.0') && opts.includes('nolock');
};

/** upstream storageClassToProvisionerKeyMapper: provisioners whose capabilities depend on class parameters. */
const keyMappers: Readonly<Record<string, (sc: StorageClass) => string>> = {
  'kubevirt.io.hostpath-provisioner': (sc) =>
    sc.parameters && 'overlayCSI' in sc.parameters
      ? 'kubevirt.io.hostpath-provisioner/overlay'
      : 'kubevirt.io.hostpath-provisioner',
  'kubernetes.io/portworx-volume': (sc) =>
    nfsv3NoLock(sc) ? 'kubernetes.io/portworx-volume/nfs' : 'kubernetes.io/portworx-volume',
  'pxd.portworx.com': (sc) => {
    const backend = sc.parameters?.['backend'];
    if (backend !== undefined) {
      if (backend === 'pure_block') return 'pxd.portworx.com/pure_block';
      if (backend === 'pure_fa_file') return 'pxd.portworx.com/pure_fa_file';
    } else if (nfsv3NoLock(sc)) return 'pxd.portworx.com/nfs';
    return 'pxd.portworx.com';
  },
  'csi.trident.netapp.io': (sc) => {
    const backend = param(sc, 'backendType');
    if (backend.startsWith('ontap-nas')) return 'csi.trident.netapp.io/ontap-nas';
    if (backend.startsWith('ontap-san')) return 'csi.trident.netapp.io/ontap-san';
    const selector = param(sc, 'selector').split(/\s*[;,]\s*/);
    if (backend === 'google-cloud-netapp-volumes' && selector.includes('performance=flex'))
      return 'csi.trident.netapp.io/gcnv-flex';
    return Unknown;
  },
  'infinibox-csi-driver': (sc) => {
    switch (param(sc, 'storage_protocol')) {
      case 'iscsi':
      case 'fc':
        return 'infinibox-csi-driver/iscsiorfibrechannel';
      case 'nvme':
        return 'infinibox-csi-driver/nvme';
      case 'nfs':
      case 'nfs_treeq':
        return 'infinibox-csi-driver/nfs';
      default:
        return Unknown;
    }
  },
  'csi.vsphere.vmware.com': (sc) =>
    fsType(sc).includes('nfs') ? 'csi.vsphere.vmware.com/nfs' : 'csi.vsphere.vmware.com',
  'csi-unity.dellemc.com': (sc) =>
    param(sc, 'protocol').toLowerCase() === 'nfs' ? 'csi-unity.dellemc.com/nfs' : 'csi-unity.dellemc.com',
  'csi-powerstore.dellemc.com': (sc) =>
    fsType(sc) === 'nfs' ? 'csi-powerstore.dellemc.com/nfs' : 'csi-powerstore.dellemc.com',
  'csi-vxflexos.dellemc.com': (sc) =>
    fsType(sc) === 'nfs' ? 'csi-vxflexos.dellemc.com/nfs' : 'csi-vxflexos.dellemc.com',
  'csi-powermax.dellemc.com': (sc) =>
    fsType(sc) === 'nfs' ? 'csi-powermax.dellemc.com/nfs' : 'csi-powermax.dellemc.com',
  'csi.huawei.com': (sc) => (param(sc, 'protocol') === 'nfs' ? 'csi.huawei.com/nfs' : 'csi.huawei.com'),
  'driver.longhorn.io': (sc) => {
    if (param(sc, 'migratable') === 'true') return 'driver.longhorn.io/migratable';
    if (param(sc, 'nfsOptions') !== '') return 'driver.longhorn.io/nfs';
    if (param(sc, 'fsType') !== '') return 'driver.longhorn.io/fs';
    return 'driver.longhorn.io';
  },
  'ebs.csi.aws.com': (sc) => {
    switch (param(sc, 'type')) {
      case 'io1':
        return 'ebs.csi.aws.com/io1';
      case 'io2':
        return 'ebs.csi.aws.com/io2';
      case 'gp2':
      case 'gp3':
        return 'ebs.csi.aws.com/gp';
      default:
        return 'ebs.csi.aws.com';
    }
  },
  'pd.csi.storage.gke.io': (sc) => {
    const type = param(sc, 'type');
    return type === 'hyperdisk-balanced' || type === 'hyperdisk-balanced-high-availability'
      ? 'pd.csi.storage.gke.io/hyperdisk'
      : 'pd.csi.storage.gke.io';
  },
  'csi.san.synology.com': (sc) => {
    switch (param(sc, 'protocol')) {
      case 'iscsi':
      case '':
        return 'csi.san.synology.com/iscsi';
      case 'smb':
        return 'csi.san.synology.com/smb';
      case 'nfs':
      case 'nfs_treeq':
        return 'csi.san.synology.com/nfs';
      default:
        return Unknown;
    }
  },
  'vpc.file.csi.ibm.io': (sc) => {
    const rwoVariant = param(sc, 'vmState') === 'true' ? '-rwo' : '';
    switch (param(sc, 'profile')) {
      case 'rfs':
        return `vpc.file.csi.ibm.io/rfs${rwoVariant}`;
      case 'dp2':
        return `vpc.file.csi.ibm.io/dp2${rwoVariant}`;
      default:
        return 'vpc.file.csi.ibm.io';
    }
  },
};

/** The table key of a class: its provisioner, refined by parameters for some provisioners. */
export function provisionerKey(sc: StorageClass): string {
  return keyMappers[sc.provisioner]?.(sc) ?? sc.provisioner;
}

export type RecognizeReason =
  'RecognizedProvisioner' | 'UnrecognizedProvisioner' | 'UnrecognizedStorageClassParameters';

/** upstream IsRecognized: whether the table knows the class (by provisioner and parameters). */
export function recognize(sc: StorageClass): RecognizeReason {
  const key = provisionerKey(sc);
  if (key === Unknown) return 'UnrecognizedStorageClassParameters';
  return key in capabilitiesByProvisionerKey ? 'RecognizedProvisioner' : 'UnrecognizedProvisioner';
}

const toSets = (caps: readonly Capability[]): ClaimPropertySet[] =>
  caps.map(([accessMode, volumeMode]) => ({ accessModes: [accessMode], volumeMode }));

/** The table's claim property sets for the class (one access mode each, best first), if it knows the class. */
export function tableClaimPropertySets(sc: StorageClass): ClaimPropertySet[] | undefined {
  const caps = capabilitiesByProvisionerKey[provisionerKey(sc)];
  return caps ? toSets(caps) : undefined;
}

/** A PersistentVolume as far as capabilitiesFromVolumes reads it. */
export interface VolumeModes {
  spec?: { storageClassName?: string; accessModes?: string[]; volumeMode?: string };
}

/**
 * upstream capabilitiesForNoProvisioner: a class without a provisioner can do what its pre-created volumes can.
 * Distinct pairs in the order first seen (upstream's order comes from a Go map, so it is unspecified).
 */
export function capabilitiesFromVolumes(sc: StorageClass, pvs: readonly VolumeModes[]): ClaimPropertySet[] {
  const seen = new Set<string>();
  const caps: Capability[] = [];
  for (const pv of pvs) {
    if (pv.spec?.storageClassName !== sc.metadata.name) continue;
    const volumeMode: VolumeMode = pv.spec?.volumeMode === 'Block' ? block : file;
    for (const mode of pv.spec?.accessModes ?? []) {
      const id = `${mode}/${volumeMode}`;
      if (seen.has(id)) continue;
      seen.add(id);
      caps.push([mode as AccessMode, volumeMode]);
    }
  }
  return toSets(caps);
}

export const advisedCloneStrategy = (sc: StorageClass): CloneStrategy | undefined =>
  cloneStrategyByProvisionerKey[provisionerKey(sc)];
export const advisedSourceFormat = (sc: StorageClass): 'pvc' | 'snapshot' | undefined =>
  sourceFormatByProvisionerKey[provisionerKey(sc)];
export const minimumSupportedPvcSize = (sc: StorageClass): string | undefined =>
  minimumSupportedPvcSizeByProvisionerKey[provisionerKey(sc)];
export const needsReadWriteOnceForDataImportCron = (sc: StorageClass): boolean =>
  useReadWriteOnceForDataImportCron.has(provisionerKey(sc));

/** upstream MatchesDataImportCronVSC */
export function fitsDataImportCron(
  sc: StorageClass,
  vsc: { driver: string; parameters?: Record<string, string> },
): boolean {
  const wanted = dataImportCronSnapshotClassParameters[provisionerKey(sc)];
  if (!wanted || vsc.driver !== sc.provisioner) return false;
  return Object.entries(wanted).every(([k, v]) => vsc.parameters?.[k] === v);
}
