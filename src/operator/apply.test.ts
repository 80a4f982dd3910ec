import { test } from 'node:test';
import assert from 'node:assert/strict';
import { covers, CreateVersionLabel, decorate, UpdateVersionLabel } from './apply.ts';

void test('covers: the live object holds every rendered field; server defaults are extra and do not count', () => {
  const want = { spec: { replicas: 1, template: { spec: { containers: [{ name: 'c', image: 'i:1' }] } } } };
  const live = {
    spec: {
      replicas: 1,
      progressDeadlineSeconds: 600,
      template: {
        spec: { containers: [{ name: 'c', image: 'i:1', terminationMessagePath: '/dev/termination-log' }] },
      },
    },
    status: { readyReplicas: 1 },
  };
  assert.ok(covers(live, want));
  assert.ok(!covers({ spec: { ...live.spec, replicas: 0 } }, want), 'an edited field');
  assert.ok(
    !covers({ spec: { replicas: 1, template: { spec: { containers: [] } } } }, want),
    'a removed element',
  );
  const extra = {
    spec: {
      ...live.spec,
      template: { spec: { containers: [...live.spec.template.spec.containers, { name: 'x' }] } },
    },
  };
  assert.ok(!covers(extra, want), 'lists must have the same length (an added rule, subject, container)');
  assert.ok(
    covers({ metadata: {} }, { metadata: { labels: {} } }),
    'an empty object is satisfied by an absent field',
  );
  assert.ok(covers({}, { spec: { rules: [] } }));
  assert.ok(!covers({ data: { a: '1' } }, { data: { a: '2' } }));
});

void test('decorate: controller reference to the CDI resource, version labels (createVersion kept), recommended labels', () => {
  const owner = {
    apiVersion: 'cdi.kubevirt.io/v1beta1',
    kind: 'CDI',
    metadata: {
      name: 'cdi',
      uid: 'u-1',
      labels: { 'app.kubernetes.io/part-of': 'hyperconverged', other: 'x' },
    },
  };
  type Dep = {
    apiVersion: string;
    kind: string;
    metadata: { name: string; namespace: string; labels: Record<string, string> };
    spec: { template: { metadata: { labels: Record<string, string> } } };
  };
  const dep: Dep = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'd', namespace: 'cdi', labels: { a: 'b' } },
    spec: { template: { metadata: { labels: { a: 'b' } } } },
  };
  const out = decorate(dep, owner, 'v2', { metadata: { labels: { [CreateVersionLabel]: 'v1' } } }) as Dep & {
    metadata: { ownerReferences: unknown[] };
  };
  assert.deepEqual(out.metadata.ownerReferences, [
    {
      apiVersion: 'cdi.kubevirt.io/v1beta1',
      kind: 'CDI',
      name: 'cdi',
      uid: 'u-1',
      controller: true,
      blockOwnerDeletion: true,
    },
  ]);
  assert.equal(out.metadata.labels[CreateVersionLabel], 'v1');
  assert.equal(out.metadata.labels[UpdateVersionLabel], 'v2');
  assert.equal(out.metadata.labels['app.kubernetes.io/part-of'], 'hyperconverged');
  assert.equal(out.metadata.labels['other'], undefined);
  assert.equal(out.spec.template.metadata.labels['app.kubernetes.io/part-of'], 'hyperconverged');
  assert.equal(dep.metadata.labels['app.kubernetes.io/part-of'], undefined, 'the input is not changed');
  const fresh = decorate(dep, owner, 'v2') as Dep;
  assert.equal(fresh.metadata.labels[CreateVersionLabel], 'v2');
});
