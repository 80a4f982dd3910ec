import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { ControllerMetrics, OperatorMetrics, type StorageProfileInfo } from './metrics.ts';

/** The sample lines of the exposition text for one metric name. */
async function samples(registry: Registry, name: string): Promise<string[]> {
  return (await registry.metrics())
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
}

const info = (over: Partial<StorageProfileInfo> = {}): StorageProfileInfo => ({
  storageClass: 'gold',
  provisioner: 'csi.example.com',
  complete: true,
  isDefault: false,
  virtDefault: false,
  rwx: true,
  smartClone: true,
  degraded: false,
  ...over,
});

void test('kubevirt_cdi_storageprofile_info: one series per class, labels in upstream order, replaced on change', async () => {
  const r = new Registry();
  const m = new ControllerMetrics(r);
  m.setStorageProfileInfo(info());
  m.setStorageProfileInfo(
    info({ storageClass: 'silver', provisioner: 'kubernetes.io/no-provisioner', rwx: false }),
  );
  assert.deepEqual(await samples(r, 'kubevirt_cdi_storageprofile_info'), [
    'kubevirt_cdi_storageprofile_info{storageclass="gold",provisioner="csi.example.com",complete="true",default="false",virtdefault="false",rwx="true",smartclone="true",degraded="false"} 1',
    'kubevirt_cdi_storageprofile_info{storageclass="silver",provisioner="kubernetes.io/no-provisioner",complete="true",default="false",virtdefault="false",rwx="false",smartclone="true",degraded="false"} 1',
  ]);
  // the class became the default and lost its snapshot class: the old series goes, no stale "default=false" stays
  m.setStorageProfileInfo(info({ isDefault: true, smartClone: false, degraded: true }));
  const gold = (await samples(r, 'kubevirt_cdi_storageprofile_info')).filter((l) => l.includes('"gold"'));
  assert.deepEqual(gold, [
    'kubevirt_cdi_storageprofile_info{storageclass="gold",provisioner="csi.example.com",complete="true",default="true",virtdefault="false",rwx="true",smartclone="false",degraded="true"} 1',
  ]);
  assert.equal(m.deleteStorageProfileInfo('gold'), 1);
  assert.equal(m.deleteStorageProfileInfo('gold'), 0);
  const left = await samples(r, 'kubevirt_cdi_storageprofile_info');
  assert.equal(left.length, 1);
  assert.match(left[0] ?? '', /storageclass="silver"/);
  assert.match(
    await r.metrics(),
    /# HELP kubevirt_cdi_storageprofile_info `StorageProfiles` info labels: `storageclass`/,
  );
});

void test('kubevirt_cdi_datavolume_pending is a plain gauge', async () => {
  const r = new Registry();
  const m = new ControllerMetrics(r);
  assert.deepEqual(await samples(r, 'kubevirt_cdi_datavolume_pending'), [
    'kubevirt_cdi_datavolume_pending 0',
  ]);
  m.setDataVolumePending(3);
  assert.deepEqual(await samples(r, 'kubevirt_cdi_datavolume_pending'), [
    'kubevirt_cdi_datavolume_pending 3',
  ]);
  assert.match(
    await r.metrics(),
    /# HELP kubevirt_cdi_datavolume_pending Number of DataVolumes pending for default storage class to be configured\n# TYPE kubevirt_cdi_datavolume_pending gauge/,
  );
});

void test('kubevirt_cdi_dataimportcron_outdated: the pending label is replaced, not duplicated; deleting drops the cron', async () => {
  const r = new Registry();
  const m = new ControllerMetrics(r);
  m.setDataImportCronOutdated('golden', 'fedora', true, true);
  m.setDataImportCronOutdated('golden', 'fedora', true, false);
  m.setDataImportCronOutdated('golden', 'centos', false, false);
  assert.deepEqual(await samples(r, 'kubevirt_cdi_dataimportcron_outdated'), [
    'kubevirt_cdi_dataimportcron_outdated{namespace="golden",cron_name="fedora",pending="false"} 1',
    'kubevirt_cdi_dataimportcron_outdated{namespace="golden",cron_name="centos",pending="false"} 0',
  ]);
  assert.equal(m.deleteDataImportCronOutdated('golden', 'fedora'), 1);
  assert.deepEqual(await samples(r, 'kubevirt_cdi_dataimportcron_outdated'), [
    'kubevirt_cdi_dataimportcron_outdated{namespace="golden",cron_name="centos",pending="false"} 0',
  ]);
});

void test('kubevirt_cdi_cr_ready starts at -1 (not the 0 CDINotReady fires on), then follows readiness', async () => {
  const r = new Registry();
  const m = new OperatorMetrics(r);
  assert.deepEqual(await samples(r, 'kubevirt_cdi_cr_ready'), ['kubevirt_cdi_cr_ready -1']);
  m.setReady(true);
  assert.deepEqual(await samples(r, 'kubevirt_cdi_cr_ready'), ['kubevirt_cdi_cr_ready 1']);
  m.setReady(false);
  assert.deepEqual(await samples(r, 'kubevirt_cdi_cr_ready'), ['kubevirt_cdi_cr_ready 0']);
});

void test('two registries do not share series (no global state)', async () => {
  const a = new Registry();
  const b = new Registry();
  new ControllerMetrics(a).setDataVolumePending(5);
  new ControllerMetrics(b);
  assert.deepEqual(await samples(a, 'kubevirt_cdi_datavolume_pending'), [
    'kubevirt_cdi_datavolume_pending 5',
  ]);
  assert.deepEqual(await samples(b, 'kubevirt_cdi_datavolume_pending'), [
    'kubevirt_cdi_datavolume_pending 0',
  ]);
});
