import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeClient } from '../../kube/index.ts';
import type { TokenGenerator } from '../../token/token.ts';
import type { AdmissionRequest } from '../admission.ts';
import { webhooks } from './index.ts';

const route = (path: string) => {
  const w = webhooks({ kube: {} as KubeClient, namespace: 'cdi', cloneTokens: {} as TokenGenerator }).find(
    (x) => x.path === path,
  );
  assert.ok(w, path);
  return w.admit;
};
const admit = route('/populator-validate');
const Kinds = {
  volumeimportsources: 'VolumeImportSource',
  volumeuploadsources: 'VolumeUploadSource',
  dataimportcrons: 'DataImportCron',
} as const;
const req = (
  resource: keyof typeof Kinds,
  spec: unknown,
  o: Partial<AdmissionRequest> = {},
): AdmissionRequest => ({
  uid: 'u',
  kind: { group: 'cdi.kubevirt.io', version: 'v1beta1', kind: Kinds[resource] },
  resource: { group: 'cdi.kubevirt.io', version: 'v1beta1', resource },
  name: 'src',
  namespace: 'ns',
  operation: 'CREATE',
  userInfo: { username: 'admin' },
  object: { metadata: { name: 'src', namespace: 'ns' }, spec },
  ...o,
});
const refused = async (r: AdmissionRequest): Promise<string> => {
  const a = await admit(r);
  assert.equal(a.allowed, false);
  assert.equal(a.status?.code, 422);
  return a.status?.message ?? '';
};
const vis = (spec: unknown, o?: Partial<AdmissionRequest>) => req('volumeimportsources', spec, o);

void test('populator-validate: valid VolumeImportSources and VolumeUploadSources are admitted', async () => {
  for (const spec of [
    { source: { http: { url: 'https://example.test/disk.qcow2' } } },
    { source: { registry: { url: 'docker://quay.io/containerdisks/fedora:latest' } } },
    { source: { blank: {} }, contentType: 'kubevirt' },
    { source: { http: { url: 'https://example.test/a.tar' } }, contentType: 'archive' },
  ])
    assert.equal((await admit(vis(spec))).allowed, true, JSON.stringify(spec));
  assert.equal((await admit(req('volumeuploadsources', { contentType: 'archive' }))).allowed, true);
});

void test("populator-validate: upstream's refusals, with its words", async () => {
  assert.match(await refused(vis({ source: {} })), /Missing VolumeImport source/);
  assert.match(
    await refused(vis({ source: { http: { url: 'https://x.test/a' }, blank: {} } })),
    /Multiple VolumeImport sources/,
  );
  assert.match(
    await refused(vis({ source: { blank: {} }, contentType: 'iso' })),
    /ContentType not one of: kubevirt, archive/,
  );
  assert.match(
    await refused(req('volumeuploadsources', { contentType: 'iso' })),
    /ContentType not one of: kubevirt, archive/,
  );
  assert.match(
    await refused(vis({ source: { http: { url: 'ftp://x.test/a' } } })),
    /Invalid source URL scheme|Invalid source URL/,
  );
  assert.match(
    await refused(vis({ source: { blank: {} }, contentType: 'archive' })),
    /SourceType cannot be blank and the contentType be archive/,
  );
  assert.match(
    await refused(
      vis({
        source: {
          vddk: { url: 'https://vc.test', uuid: 'u', backingFile: 'b', thumbprint: 't', secretRef: 's' },
        },
        checkpoints: [{ current: 'c1', previous: '' }],
      }),
    ),
    /Unable to do multi-stage import without specifying a target claim/,
  );
  const long = 'x'.repeat(64);
  assert.match(
    await refused(
      vis(
        { source: { blank: {} } },
        { name: long, object: { metadata: { name: long }, spec: { source: { blank: {} } } } },
      ),
    ),
    /Name cannot be longer than 63 characters/,
  );
});

void test('populator-validate: the spec is immutable, except the checkpoints of a multi-stage import', async () => {
  const http = { source: { http: { url: 'https://example.test/disk.qcow2' } } };
  assert.match(
    await refused(
      vis(
        { source: { http: { url: 'https://example.test/other.qcow2' } } },
        { operation: 'UPDATE', oldObject: { spec: http } },
      ),
    ),
    /Cannot update VolumeImportSource Spec/,
  );
  assert.match(
    await refused(
      req(
        'volumeuploadsources',
        { contentType: 'archive' },
        { operation: 'UPDATE', oldObject: { spec: {} } },
      ),
    ),
    /Cannot update VolumeUploadSource Spec/,
  );
  const vddk = {
    source: {
      vddk: { url: 'https://vc.test', uuid: 'u', backingFile: 'b', thumbprint: 't', secretRef: 's' },
    },
    targetClaim: 'disk',
    checkpoints: [{ current: 'c1', previous: '' }],
  };
  const advanced = {
    ...vddk,
    checkpoints: [...vddk.checkpoints, { current: 'c2', previous: 'c1' }],
    finalCheckpoint: true,
  };
  assert.equal(
    (await admit(vis(advanced, { operation: 'UPDATE', oldObject: { spec: vddk } }))).allowed,
    true,
  );
  assert.match(
    await refused(
      vis({ ...advanced, targetClaim: 'other' }, { operation: 'UPDATE', oldObject: { spec: vddk } }),
    ),
    /Cannot update VolumeImportSource Spec/,
  );
});

void test('dataimportcron-validate as cdi-apiserver serves it checks the template as a DataVolume spec', async () => {
  const cron = route('/dataimportcron-validate');
  const r = await cron(
    req('dataimportcrons', {
      schedule: '',
      managedDataSource: 'fedora',
      template: {
        spec: {
          source: { registry: { url: 'docker://quay.io/x:1' } },
          storage: { resources: { requests: { storage: '0' } } },
        },
      },
    }),
  );
  assert.equal(r.allowed, false);
  assert.equal(r.status?.message, "Storage size can't be equal or less than zero");
  assert.match(String(r.status?.details?.causes?.[0]?.field), /^Template\./);
});
