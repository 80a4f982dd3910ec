import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchesLabels, parseLabelSelector } from './selector.ts';

void test('label selectors: equality, inequality, existence and sets, all required', () => {
  const l = { app: 'containerized-data-importer', 'cdi.kubevirt.io': 'importer', tier: 'a' };
  const m = (s: string): boolean => matchesLabels(l, parseLabelSelector(s));
  assert.equal(m('app=containerized-data-importer'), true);
  assert.equal(m('app==containerized-data-importer,cdi.kubevirt.io=importer'), true);
  assert.equal(m('app=containerized-data-importer,cdi.kubevirt.io=upload'), false);
  assert.equal(m('tier!=b'), true);
  assert.equal(m('missing!=b'), true, 'a missing label is not equal to anything');
  assert.equal(m('tier'), true);
  assert.equal(m('!tier'), false);
  assert.equal(m('!missing'), true);
  assert.equal(m('tier in (a, b)'), true);
  assert.equal(m('tier notin (a,b)'), false);
  assert.equal(m('missing in (a)'), false);
  assert.equal(m(''), true);
  assert.throws(() => parseLabelSelector('a=b=c'), /label selector "a=b=c": cannot read "a=b=c"/);
});
