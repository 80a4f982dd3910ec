import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { StorageClass } from '../../api/storageprofile.ts';
import {
  advisedCloneStrategy,
  advisedSourceFormat,
  capabilitiesByProvisionerKey,
  capabilitiesFromVolumes,
  cloneStrategyByProvisionerKey,
  fitsDataImportCron,
  minimumSupportedPvcSize,
  minimumSupportedPvcSizeByProvisionerKey,
  needsReadWriteOnceForDataImportCron,
  provisionerKey,
  recognize,
  sourceFormatByProvisionerKey,
  tableClaimPropertySets,
} from './capabilities.ts';

const sc = (provisioner: string, parameters?: Record<string, string>, name = 'sc'): StorageClass => ({
  metadata: { name },
  provisioner,
  ...(parameters ? { parameters } : {}),
});

void test('the table is upstream v1.66 entry for entry, without the local test driver', () => {
  assert.equal(Object.keys(capabilitiesByProvisionerKey).length, 79);
  assert.equal(Object.keys(cloneStrategyByProvisionerKey).length, 39);
  assert.equal(Object.keys(sourceFormatByProvisionerKey).length, 12);
  assert.equal(Object.keys(minimumSupportedPvcSizeByProvisionerKey).length, 14);
  for (const testDriver of ['hostpath.csi.cdi.dev', 'hostpath.csi.k8s.io'])
    assert.equal(
      capabilitiesByProvisionerKey[testDriver],
      undefined,
      `${testDriver} is not a production entry`,
    );
  for (const [key, caps] of Object.entries(capabilitiesByProvisionerKey)) {
    assert.ok(caps.length > 0, key);
    for (const [am, vm] of caps) {
      assert.ok(['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany'].includes(am), `${key}: ${am}`);
      assert.ok(['Block', 'Filesystem'].includes(vm), `${key}: ${vm}`);
    }
  }
  // every advice is about a provisioner the table knows, as upstream's (HPE XP only has a minimum size)
  for (const key of [
    ...Object.keys(cloneStrategyByProvisionerKey),
    ...Object.keys(sourceFormatByProvisionerKey),
  ])
    assert.ok(key in capabilitiesByProvisionerKey, key);
});

// [class, its key, claim property sets, advised clone strategy, source format, minimum size]
const cases: [StorageClass, string, string, string | undefined, string | undefined, string | undefined][] = [
  [
    sc('rook-ceph.rbd.csi.ceph.com'),
    'rook-ceph.rbd.csi.ceph.com',
    'RWX/Block RWO/Block RWO/Filesystem',
    'csi-clone',
    'snapshot',
    undefined,
  ],
  [
    sc('kubevirt.io.hostpath-provisioner'),
    'kubevirt.io.hostpath-provisioner',
    'RWO/Filesystem',
    undefined,
    undefined,
    undefined,
  ],
  [
    sc('kubevirt.io.hostpath-provisioner', { overlayCSI: 'true' }),
    'kubevirt.io.hostpath-provisioner/overlay',
    'RWX/Filesystem',
    undefined,
    undefined,
    undefined,
  ],
  [sc('ebs.csi.aws.com', { type: 'gp3' }), 'ebs.csi.aws.com/gp', 'RWO/Block', undefined, undefined, '1Gi'],
  [
    sc('ebs.csi.aws.com', { type: 'io2' }),
    'ebs.csi.aws.com/io2',
    'RWX/Block RWO/Block RWO/Filesystem',
    undefined,
    undefined,
    '4Gi',
  ],
  [sc('ebs.csi.aws.com'), 'ebs.csi.aws.com', 'RWO/Block', undefined, undefined, undefined],
  [
    sc('pxd.portworx.com', { backend: 'pure_block' }),
    'pxd.portworx.com/pure_block',
    'RWX/Block RWO/Block RWO/Filesystem',
    'csi-clone',
    undefined,
    undefined,
  ],
  [
    sc('pxd.portworx.com', { sharedv4_mount_options: 'vers=3.0,nolock' }),
    'pxd.portworx.com/nfs',
    'RWX/Filesystem RWO/Filesystem',
    'csi-clone',
    undefined,
    undefined,
  ],
  [
    sc('pxd.portworx.com', { backend: 'other', sharedv4_mount_options: 'vers=3.0,nolock' }),
    'pxd.portworx.com',
    'RWX/Block RWX/Filesystem RWO/Block RWO/Filesystem',
    'csi-clone',
    undefined,
    undefined,
  ],
  [
    sc('csi.trident.netapp.io', { backendType: 'ontap-san-economy' }),
    'csi.trident.netapp.io/ontap-san',
    'RWX/Block',
    'snapshot',
    'snapshot',
    undefined,
  ],
  [
    sc('csi.trident.netapp.io', {
      backendType: 'google-cloud-netapp-volumes',
      selector: 'a=b; performance=flex',
    }),
    'csi.trident.netapp.io/gcnv-flex',
    'RWX/Filesystem RWO/Filesystem',
    'snapshot',
    'snapshot',
    '1Gi',
  ],
  [
    sc('driver.longhorn.io', { migratable: 'true', fsType: 'ext4' }),
    'driver.longhorn.io/migratable',
    'RWX/Block RWO/Block',
    undefined,
    undefined,
    undefined,
  ],
  [
    sc('driver.longhorn.io', { fsType: 'ext4' }),
    'driver.longhorn.io/fs',
    'RWO/Filesystem',
    undefined,
    undefined,
    undefined,
  ],
  [
    sc('csi.vsphere.vmware.com', { 'csi.storage.k8s.io/fstype': 'NFS4' }),
    'csi.vsphere.vmware.com/nfs',
    'RWX/Filesystem RWO/Block RWO/Filesystem',
    undefined,
    undefined,
    undefined,
  ],
  [
    sc('csi-powerstore.dellemc.com'),
    'csi-powerstore.dellemc.com',
    'RWX/Block RWO/Block RWO/Filesystem ROX/Block',
    'copy',
    undefined,
    undefined,
  ],
  [
    sc('csi-unity.dellemc.com', { protocol: 'NFS' }),
    'csi-unity.dellemc.com/nfs',
    'RWX/Filesystem RWO/Filesystem ROX/Filesystem',
    undefined,
    undefined,
    undefined,
  ],
  [
    sc('pd.csi.storage.gke.io', { type: 'hyperdisk-balanced' }),
    'pd.csi.storage.gke.io/hyperdisk',
    'RWX/Block RWO/Block RWO/Filesystem',
    'snapshot',
    'snapshot',
    '4Gi',
  ],
  [
    sc('vpc.file.csi.ibm.io', { profile: 'dp2', vmState: 'true' }),
    'vpc.file.csi.ibm.io/dp2-rwo',
    'RWO/Filesystem',
    'snapshot',
    'snapshot',
    '10Gi',
  ],
  [
    sc('csi.san.synology.com'),
    'csi.san.synology.com/iscsi',
    'RWX/Block RWO/Block RWO/Filesystem',
    'csi-clone',
    undefined,
    '1Gi',
  ],
  [sc('topolvm.io'), 'topolvm.io', 'RWO/Block RWO/Filesystem', 'copy', undefined, undefined],
  [sc('xspc.csi.hpe.com'), 'xspc.csi.hpe.com', '-', undefined, undefined, '1Gi'],
  [sc('example.com/unknown'), 'example.com/unknown', '-', undefined, undefined, undefined],
];

const short: Record<string, string> = { ReadWriteOnce: 'RWO', ReadOnlyMany: 'ROX', ReadWriteMany: 'RWX' };

for (const [cls, key, sets, clone, format, min] of cases) {
  void test(`${cls.provisioner} ${JSON.stringify(cls.parameters ?? {})} is ${key}`, () => {
    assert.equal(provisionerKey(cls), key);
    const got = tableClaimPropertySets(cls);
    assert.equal(
      got ? got.map((s) => `${s.accessModes.map((m) => short[m]).join(',')}/${s.volumeMode}`).join(' ') : '-',
      sets,
    );
    assert.equal(advisedCloneStrategy(cls), clone);
    assert.equal(advisedSourceFormat(cls), format);
    assert.equal(minimumSupportedPvcSize(cls), min);
  });
}

void test('recognition: by key, and a class whose parameters no mapper places is UnrecognizedStorageClassParameters', () => {
  assert.equal(recognize(sc('rbd.csi.ceph.com')), 'RecognizedProvisioner');
  assert.equal(recognize(sc('hostpath.csi.cdi.dev')), 'UnrecognizedProvisioner');
  assert.equal(recognize(sc('kubernetes.io/no-provisioner')), 'UnrecognizedProvisioner');
  assert.equal(
    recognize(sc('csi.trident.netapp.io', { backendType: 'azure-netapp-files' })),
    'UnrecognizedStorageClassParameters',
  );
  assert.equal(
    recognize(sc('infinibox-csi-driver', { storage_protocol: 'smb' })),
    'UnrecognizedStorageClassParameters',
  );
  assert.equal(
    recognize(sc('csi.san.synology.com', { protocol: 'ftp' })),
    'UnrecognizedStorageClassParameters',
  );
});

void test('a class without provisioner can do what its volumes offer, each pair once', () => {
  const local = sc('kubernetes.io/no-provisioner', undefined, 'local');
  const pvs = [
    { spec: { storageClassName: 'local', accessModes: ['ReadWriteOnce'], volumeMode: 'Block' } },
    { spec: { storageClassName: 'local', accessModes: ['ReadWriteOnce', 'ReadOnlyMany'] } },
    { spec: { storageClassName: 'local', accessModes: ['ReadWriteOnce'], volumeMode: 'Block' } },
    { spec: { storageClassName: 'other', accessModes: ['ReadWriteMany'] } },
  ];
  assert.deepEqual(capabilitiesFromVolumes(local, pvs), [
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Block' },
    { accessModes: ['ReadWriteOnce'], volumeMode: 'Filesystem' },
    { accessModes: ['ReadOnlyMany'], volumeMode: 'Filesystem' },
  ]);
  assert.deepEqual(capabilitiesFromVolumes(local, []), []);
});

void test('DataImportCron specifics: GKE wants RWO and image snapshot classes', () => {
  const gke = sc('pd.csi.storage.gke.io');
  assert.equal(needsReadWriteOnceForDataImportCron(gke), true);
  assert.equal(needsReadWriteOnceForDataImportCron(sc('rbd.csi.ceph.com')), false);
  assert.equal(
    fitsDataImportCron(gke, { driver: 'pd.csi.storage.gke.io', parameters: { 'snapshot-type': 'images' } }),
    true,
  );
  assert.equal(fitsDataImportCron(gke, { driver: 'pd.csi.storage.gke.io' }), false);
  assert.equal(
    fitsDataImportCron(gke, { driver: 'other', parameters: { 'snapshot-type': 'images' } }),
    false,
  );
  assert.equal(
    fitsDataImportCron(sc('rbd.csi.ceph.com'), {
      driver: 'rbd.csi.ceph.com',
      parameters: { 'snapshot-type': 'images' },
    }),
    false,
  );
});
