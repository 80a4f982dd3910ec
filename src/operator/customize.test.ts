import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyCustomizations,
  CustomizerAnnotation,
  customizationsHash,
  jsonPatch,
  strategicMerge,
} from './customize.ts';

const deployment = () => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'cdi-deployment', namespace: 'cdi' },
  spec: {
    replicas: 1,
    template: {
      spec: {
        containers: [{ name: 'cdi-controller', image: 'c:1', env: [{ name: 'A', value: '1' }] }],
      },
    },
  },
});

void test('a strategic patch merges containers and env by name; the patched object carries the hash', () => {
  const objs: Record<string, unknown>[] = [
    deployment(),
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cdi-deployment' } },
  ];
  const c = {
    patches: [
      {
        resourceName: 'cdi-deployment',
        resourceType: 'Deployment',
        type: 'strategic',
        patch: JSON.stringify({
          spec: {
            template: {
              spec: { containers: [{ name: 'cdi-controller', env: [{ name: 'B', value: '2' }] }] },
            },
          },
        }),
      },
    ],
  };
  applyCustomizations(objs, c);
  const d = objs[0] as ReturnType<typeof deployment> & { metadata: { annotations: Record<string, string> } };
  assert.deepEqual(d.spec.template.spec.containers[0]!.env, [
    { name: 'A', value: '1' },
    { name: 'B', value: '2' },
  ]);
  assert.equal(d.spec.template.spec.containers[0]!.image, 'c:1');
  assert.equal(d.metadata.annotations[CustomizerAnnotation], customizationsHash(c));
  assert.equal(
    (objs[1] as { metadata: { annotations?: unknown } }).metadata.annotations,
    undefined,
    'ConfigMaps are not customized (as upstream)',
  );
});

void test('json and merge patches, "*" matches any name, flags become container args', () => {
  const objs: Record<string, unknown>[] = [deployment()];
  applyCustomizations(objs, {
    patches: [
      {
        resourceName: '*',
        resourceType: 'deployment',
        type: 'json',
        patch:
          '[{"op":"replace","path":"/spec/replicas","value":3},{"op":"add","path":"/metadata/labels/x","value":"y"},{"op":"remove","path":"/nope"}]',
      },
      {
        resourceName: 'cdi-deployment',
        resourceType: 'Deployment',
        type: 'merge',
        patch: '{"spec":{"paused":true}}',
      },
    ],
    flags: { controller: { v: '3', dry: '' } },
  });
  const d = objs[0] as ReturnType<typeof deployment> & {
    metadata: { labels: Record<string, string> };
    spec: { paused: boolean };
  };
  assert.equal(d.spec.replicas, 3);
  assert.equal(d.metadata.labels['x'], 'y');
  assert.equal(d.spec.paused, true);
  assert.deepEqual((d.spec.template.spec.containers[0] as { args?: string[] }).args, ['-v', '3', '-dry']);
});

void test('a patch that cannot be applied is refused with a line naming it', () => {
  assert.throws(
    () =>
      applyCustomizations([deployment()], {
        patches: [{ resourceName: '*', resourceType: 'Deployment', type: 'json', patch: '{"op":1}' }],
      }),
    /customizeComponents patch \(json\) for Deployment cdi-deployment must be a JSON array/,
  );
  assert.throws(
    () =>
      applyCustomizations([deployment()], {
        patches: [{ resourceName: '*', resourceType: 'Deployment', type: 'yaml', patch: '{}' }],
      }),
    /type must be json, merge or strategic/,
  );
  assert.throws(() => jsonPatch({}, [{ op: 'replace', path: '/a', value: 1 }], 'p'), /cannot replace \/a/);
});

void test('strategic merge: null deletes, $patch: delete removes an element, lists without a merge key are replaced', () => {
  const out = strategicMerge(
    { a: 1, b: 2, tolerations: [{ key: 'x' }], containers: [{ name: 'a' }, { name: 'b' }] },
    { b: null, tolerations: [{ key: 'y' }], containers: [{ name: 'a', $patch: 'delete' }] },
    [],
  );
  assert.deepEqual(out, { a: 1, tolerations: [{ key: 'y' }], containers: [{ name: 'b' }] });
});
