import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdmissionRequest } from '../admission.ts';
import { dataImportCronValidate } from './dataimportcron-validate.ts';
import { validateDataVolumeSpec } from './datavolume-validate.ts';

const spec = (over: Record<string, unknown> = {}, tpl: Record<string, unknown> = {}) => ({
  schedule: '0 */12 * * *',
  managedDataSource: 'fedora',
  template: {
    spec: {
      source: { registry: { url: 'docker://quay.io/containerdisks/fedora:latest' } },
      storage: { resources: { requests: { storage: '5Gi' } } },
      ...tpl,
    },
  },
  ...over,
});
const req = (s: unknown, o: Partial<AdmissionRequest> = {}): AdmissionRequest => ({
  uid: 'u',
  kind: { group: 'cdi.kubevirt.io', version: 'v1beta1', kind: 'DataImportCron' },
  resource: { group: 'cdi.kubevirt.io', version: 'v1beta1', resource: 'dataimportcrons' },
  name: 'fedora-cron',
  namespace: 'golden',
  operation: 'CREATE',
  userInfo: { username: 'admin' },
  object: { metadata: { name: 'fedora-cron', namespace: 'golden' }, spec: s },
  ...o,
});
const admit = dataImportCronValidate();
const message = async (s: unknown, o?: Partial<AdmissionRequest>): Promise<string> => {
  const r = await admit(req(s, o));
  assert.equal(r.allowed, false);
  assert.equal(r.status?.code, 422);
  return r.status?.message ?? '';
};

void test('a valid DataImportCron is admitted', async () => {
  assert.equal((await admit(req(spec()))).allowed, true);
  assert.equal(
    (await admit(req(spec({ schedule: '', importsToKeep: 0, garbageCollect: 'Never' })))).allowed,
    true,
  );
  assert.equal(
    (await admit(req(spec({}, { source: { pvc: { namespace: 'a', name: 'b' } } })))).allowed,
    true,
  );
});

void test("upstream's refusals, in upstream's words", async () => {
  assert.equal(await message(spec({}, { source: { http: { url: 'https://x' } } })), 'Missing source');
  assert.equal(
    await message(spec({}, { contentType: 'archive' })),
    'Unsettable fields: SourceRef, ContentType, Checkpoints, FinalCheckpoint',
  );
  assert.equal(await message(spec({ schedule: '61 * * * *' })), 'Illegal cron schedule');
  assert.equal(await message(spec({ importsToKeep: -1 })), 'Illegal ImportsToKeep value');
  assert.equal(await message(spec({ garbageCollect: 'Sometimes' })), 'Illegal GarbageCollect value');
  assert.equal(await message(spec({ managedDataSource: '' })), 'Illegal ManagedDataSource value');
  assert.equal(
    await message(spec({ managedDataSource: 'x'.repeat(64) })),
    'Name cannot be longer than 63 characters',
  );
  const long = req(spec(), { object: { metadata: { name: 'y'.repeat(64) }, spec: spec() } });
  assert.equal((await admit(long)).status?.message, 'Name cannot be longer than 63 characters');
});

void test('the spec cannot change; metadata can', async () => {
  const old = { metadata: { name: 'fedora-cron' }, spec: spec() };
  assert.equal(
    await message(spec({ importsToKeep: 5 }), { operation: 'UPDATE', oldObject: old }),
    'Cannot update DataImportCron Spec',
  );
  const relabel = req(spec(), { operation: 'UPDATE', oldObject: old });
  assert.equal((await admit(relabel)).allowed, true);
});

void test("the sources the controller polls itself are admitted, with the template checked as a DataVolume's (upstream's wiring)", async () => {
  const wired = dataImportCronValidate({ validateTemplate: (s) => validateDataVolumeSpec(s, 'Template') });
  const node = { registry: { url: 'docker://quay.io/containerdisks/fedora:latest', pullMethod: 'node' } };
  assert.equal((await wired(req(spec({}, { source: node })))).allowed, true);
  const pvc = { pvc: { namespace: 'golden-src', name: 'fedora-disk' } };
  assert.equal((await wired(req(spec({}, { source: pvc, storage: {} })))).allowed, true);
  const refused = async (source: unknown): Promise<string> => {
    const r = await wired(req(spec({}, { source })));
    assert.equal(r.allowed, false);
    return r.status?.message ?? '';
  };
  assert.equal(
    await refused({ pvc: { name: 'fedora-disk' } }),
    'Template.source.PVC source PVC is not valid',
  );
  assert.equal(
    await refused({ registry: { url: 'docker://quay.io/x:1', pullMethod: 'kubelet' } }),
    'ImportMethod kubelet is neither pod, node or ""',
  );
  assert.match(
    await refused({ registry: { imageStream: 'fedora:latest' } }),
    /ImageStream/,
    'an ImageStream needs pullMethod node',
  );
});
