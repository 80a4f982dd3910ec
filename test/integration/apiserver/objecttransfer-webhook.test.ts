/**
 * objecttransfer-validate's target check against the real kube-apiserver: the handler looks the target DataVolume
 * or PVC up with a real client and refuses a transfer onto an object that exists, with upstream's message; a target
 * that does not exist is admitted with upstream's deprecation warning. (The rules that need no API server are in
 * src/apiserver/webhooks/objecttransfer-validate.test.ts; the operator e2e runs the registered webhook.)
 *   flock -o /work/cluster-tests.lock node --test test/integration/apiserver/objecttransfer-webhook.test.ts
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AdmissionRequest } from '../../../src/apiserver/admission.ts';
import { ObjectTransferDeprecationWarning } from '../../../src/apiserver/webhooks/objecttransfer-validate.ts';
import { webhooks } from '../../../src/apiserver/webhooks/index.ts';
import { Resources, type KubeClient, type KubeObject } from '../../../src/kube/index.ts';
import type { TokenGenerator } from '../../../src/token/token.ts';
import { useTestNamespace } from '../kube/cluster.ts';

let kube: KubeClient;
let ns = '';
useTestNamespace(
  'ot-webhook',
  (c, n) => {
    kube = c;
    ns = n;
  },
  { crds: true },
);

const admitWith = (k: KubeClient) => {
  const w = webhooks({ kube: k, namespace: 'cdi', cloneTokens: {} as TokenGenerator }).find(
    (x) => x.path === '/objecttransfer-validate',
  );
  assert.ok(w);
  return w.admit;
};
const create = (spec: unknown): AdmissionRequest => ({
  uid: 'u',
  kind: { group: 'cdi.kubevirt.io', version: 'v1beta1', kind: 'ObjectTransfer' },
  resource: { group: 'cdi.kubevirt.io', version: 'v1beta1', resource: 'objecttransfers' },
  name: 'ot',
  operation: 'CREATE',
  userInfo: { username: 'admin' },
  object: { apiVersion: 'cdi.kubevirt.io/v1beta1', kind: 'ObjectTransfer', metadata: { name: 'ot' }, spec },
});

void test('objecttransfer-validate: a target PVC or DataVolume that exists is refused; one that does not is admitted with the deprecation warning', async () => {
  const admit = admitWith(kube);
  await kube.create(Resources.PersistentVolumeClaim, {
    metadata: { name: 'taken', namespace: ns },
    spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Mi' } } },
  } as KubeObject);
  await kube.create(Resources.DataVolume, {
    metadata: { name: 'taken-dv', namespace: ns },
    spec: { source: { blank: {} }, storage: { resources: { requests: { storage: '1Mi' } } } },
  } as KubeObject);

  // the target is the source's namespace/name with the target's fields replacing them
  for (const [kind, spec, target] of [
    ['PersistentVolumeClaim', { namespace: 'elsewhere', name: 'taken' }, { namespace: ns }],
    ['PersistentVolumeClaim', { namespace: ns, name: 'src' }, { name: 'taken' }],
    ['DataVolume', { namespace: 'elsewhere', name: 'taken-dv' }, { namespace: ns }],
    ['DataVolume', { namespace: ns, name: 'src' }, { name: 'taken-dv' }],
  ] as const) {
    const a = await admit(create({ source: { kind, ...spec }, target }));
    const name = 'name' in target ? target.name : spec.name;
    assert.equal(a.allowed, false, `${kind} ${JSON.stringify(target)}`);
    assert.equal(a.status?.code, 400);
    assert.equal(a.status?.message, `ObjectTransfer target "${ns}/${name}" already exists`);
  }
  for (const kind of ['PersistentVolumeClaim', 'DataVolume']) {
    const a = await admit(
      create({ source: { kind, namespace: 'elsewhere', name: 'free' }, target: { namespace: ns } }),
    );
    assert.equal(a.allowed, true, kind);
    assert.deepEqual(a.warnings, [ObjectTransferDeprecationWarning]);
  }
});
