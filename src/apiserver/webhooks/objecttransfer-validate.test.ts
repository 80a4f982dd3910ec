// The rules of objecttransfer-validate that need no API server; the target-exists lookups run against the real
// kube-apiserver in test/integration/apiserver/objecttransfer-webhook.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KubeClient } from '../../kube/index.ts';
import type { TokenGenerator } from '../../token/token.ts';
import type { AdmissionRequest } from '../admission.ts';
import { webhooks } from './index.ts';

// these cases must not reach the API server: a client that fails the test if it is asked anything
const untouchable = new Proxy({} as KubeClient, {
  get: (_t, p) => () => assert.fail(`the webhook asked the API server (${String(p)})`),
});
const w = webhooks({ kube: untouchable, namespace: 'cdi', cloneTokens: {} as TokenGenerator }).find(
  (x) => x.path === '/objecttransfer-validate',
);
assert.ok(w, 'cdi-apiserver serves /objecttransfer-validate');
const admit = w.admit;

const ot = (spec: unknown) => ({
  apiVersion: 'cdi.kubevirt.io/v1beta1',
  kind: 'ObjectTransfer',
  metadata: { name: 'ot' },
  spec,
});
const req = (o: Partial<AdmissionRequest>): AdmissionRequest => ({
  uid: 'u',
  kind: { group: 'cdi.kubevirt.io', version: 'v1beta1', kind: 'ObjectTransfer' },
  resource: { group: 'cdi.kubevirt.io', version: 'v1beta1', resource: 'objecttransfers' },
  name: 'ot',
  operation: 'CREATE',
  userInfo: { username: 'admin' },
  ...o,
});
const refusal = async (r: AdmissionRequest): Promise<string> => {
  const a = await admit(r);
  assert.equal(a.allowed, false);
  assert.equal(a.status?.code, 400);
  return a.status?.message ?? '';
};
const source = { kind: 'DataVolume', namespace: 'ns', name: 'dv' };

void test('objecttransfer-validate: another resource is an error; DELETE passes', async () => {
  assert.equal(
    await refusal(
      req({ resource: { group: 'cdi.kubevirt.io', version: 'v1beta1', resource: 'objecttransfersxxx' } }),
    ),
    'unexpected resource: objecttransfersxxx',
  );
  assert.equal(
    await refusal(req({ resource: { group: 'apps', version: 'v1', resource: 'objecttransfers' } })),
    'unexpected resource: objecttransfers',
  );
  assert.equal((await admit(req({ operation: 'DELETE' }))).allowed, true);
});

void test("objecttransfer-validate CREATE: upstream's refusals, with its words", async () => {
  assert.equal(
    await refusal(req({ object: ot({ source, target: {} }) })),
    'Target namespace and/or target name must be supplied',
  );
  assert.equal(
    await refusal(req({ object: ot({ source, target: { namespace: null } }) })),
    'Target namespace and/or target name must be supplied',
  );
  assert.equal(
    await refusal(
      req({ object: ot({ source: { ...source, kind: 'DataVolumexxx' }, target: { namespace: 'foo' } }) }),
    ),
    'Unsupported kind "DataVolumexxx"',
  );
  // the target check comes before the kind check, as upstream's
  assert.equal(
    await refusal(req({ object: ot({ source: { ...source, kind: 'Secret' }, target: {} }) })),
    'Target namespace and/or target name must be supplied',
  );
  assert.match(await refusal(req({})), /no ObjectTransfer object/);
});

void test('objecttransfer-validate UPDATE: the spec is immutable, the status may change', async () => {
  const old = { ...ot({ source, target: { namespace: 'foo' } }), status: { phase: 'Pending' } };
  const update = (object: unknown) => req({ operation: 'UPDATE', object, oldObject: old });
  assert.equal(
    await refusal(update(ot({ source, target: { namespace: 'bar' } }))),
    'ObjectTransfer spec is immutable',
  );
  assert.equal(
    await refusal(update(ot({ source, target: { namespace: 'foo', name: 'x' } }))),
    'ObjectTransfer spec is immutable',
  );
  assert.equal(
    await refusal(update(ot({ source, target: { namespace: 'foo' }, parentName: 'p' }))),
    'ObjectTransfer spec is immutable',
  );
  const status = await admit(
    update({ ...ot({ source, target: { namespace: 'foo' } }), status: { phase: 'Running' } }),
  );
  assert.equal(status.allowed, true);
  // as Go's typed struct and Semantic.DeepEqual: an empty requiredAnnotations map is an absent one
  const empty = await admit(
    update(ot({ source: { ...source, requiredAnnotations: {} }, target: { namespace: 'foo' } })),
  );
  assert.equal(empty.allowed, true);
  assert.match(await refusal(req({ operation: 'UPDATE', object: old })), /no old ObjectTransfer object/);
});
