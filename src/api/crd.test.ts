import { test } from 'node:test';
import assert from 'node:assert/strict';
import Type from 'typebox';
import { buildCrd, structuralize, type JsonSchema } from './crd.ts';
import { crds } from './crds.ts';

void test('structuralize turns literal unions into enums and records into additionalProperties', () => {
  const s = structuralize(
    Type.Object({
      mode: Type.Union([Type.Literal('a'), Type.Literal('b')]),
      one: Type.Literal('x'),
      labels: Type.Record(Type.String(), Type.String()),
    }),
  );
  const props = s.properties as Record<string, JsonSchema>;
  assert.deepEqual(props.mode, { enum: ['a', 'b'], type: 'string' });
  assert.deepEqual(props.one, { enum: ['x'], type: 'string' });
  assert.deepEqual(props.labels, { additionalProperties: { type: 'string' }, type: 'object' });
});

void test('structuralize names the path of a node a CRD cannot hold', () => {
  assert.throws(
    () => structuralize(Type.Object({ a: Type.Object({ b: Type.Any() }) })),
    /\$\.a\.b: every node of a structural schema needs a type/,
  );
  assert.throws(
    () => structuralize(Type.Object({ u: Type.Union([Type.String(), Type.Number()]) })),
    /\$\.u: anyOf is only allowed/,
  );
});

void test('structuralize drops $id and $schema and keeps int-or-string', () => {
  const s = structuralize({
    $id: 'x',
    $schema: 'y',
    type: 'object',
    properties: {
      q: { 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] },
    },
  });
  assert.equal(s.$id, undefined);
  assert.equal(s.$schema, undefined);
  assert.equal((s.properties as Record<string, JsonSchema>).q!['x-kubernetes-int-or-string'], true);
});

void test('buildCrd makes metadata an opaque object', () => {
  const crd = buildCrd({
    kind: 'Foo',
    plural: 'foos',
    singular: 'foo',
    scope: 'Namespaced',
    statusSubresource: false,
    schema: Type.Object({ metadata: Type.Object({ name: Type.String() }), spec: Type.Object({}) }),
  });
  const schema = (crd.spec as { versions: { schema: { openAPIV3Schema: JsonSchema } }[] }).versions[0]!.schema
    .openAPIV3Schema;
  assert.deepEqual((schema.properties as Record<string, JsonSchema>).metadata, { type: 'object' });
});

void test('every node of every generated CRD schema has a type or an x-kubernetes escape, and no forbidden keyword', () => {
  const forbidden = ['$id', '$schema', '$ref', 'const', 'patternProperties'];
  const visit = (n: JsonSchema, path: string): void => {
    for (const k of forbidden) assert.ok(!(k in n), `${path} has ${k}`);
    assert.ok(
      n.type !== undefined ||
        n['x-kubernetes-int-or-string'] === true ||
        n['x-kubernetes-preserve-unknown-fields'] === true,
      `${path} has no type`,
    );
    for (const [k, c] of Object.entries((n.properties ?? {}) as Record<string, JsonSchema>))
      visit(c, `${path}.${k}`);
    if (n.items) visit(n.items as JsonSchema, `${path}[]`);
    if (typeof n.additionalProperties === 'object') visit(n.additionalProperties as JsonSchema, `${path}.*`);
  };
  for (const crd of crds()) {
    for (const v of (crd.spec as { versions: { schema: { openAPIV3Schema: JsonSchema } }[] }).versions)
      visit(v.schema.openAPIV3Schema, (crd.metadata as { name: string }).name);
  }
});
