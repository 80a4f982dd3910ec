import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import {
  alertRules,
  prometheusRule,
  renderMonitoringFiles,
  ruleGroups,
  runbookUrlTemplate,
} from './rules.ts';

void test('deploy/monitoring/*.yaml are what src/monitoring renders (run npm run gen after a change)', async () => {
  const dir = join(import.meta.dirname, '..', '..', 'deploy', 'monitoring');
  const files = renderMonitoringFiles();
  assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort(), Object.keys(files).sort());
  for (const [name, text] of Object.entries(files)) {
    assert.equal(
      await readFile(join(dir, name), 'utf8'),
      text,
      `deploy/monitoring/${name} is stale: run npm run gen`,
    );
  }
  // and the file reads back as the object
  assert.deepEqual(YAML.parse(files['prometheus-cdi-rules.yaml'] ?? ''), prometheusRule('cdi'));
});

void test("upstream's rule names, groups and order", () => {
  const [recording, alerts] = ruleGroups('cdi');
  assert.equal(recording?.name, 'recordingRules.rules');
  assert.deepEqual(
    recording?.rules.map((r) => r.record),
    [
      'cluster:kubevirt_cdi_clone_pods_high_restart:count',
      'cluster:kubevirt_cdi_import_pods_high_restart:count',
      'cluster:kubevirt_cdi_operator_up:sum',
      'cluster:kubevirt_cdi_upload_pods_high_restart:count',
      'kubevirt_cdi_clone_pods_high_restart',
      'kubevirt_cdi_import_pods_high_restart',
      'kubevirt_cdi_operator_up',
      'kubevirt_cdi_upload_pods_high_restart',
    ],
  );
  assert.equal(alerts?.name, 'alerts.rules');
  const bySeverity: Record<string, unknown> = Object.fromEntries(
    (alerts?.rules ?? []).map((r) => [r.alert ?? '', [r.labels?.['severity'], r.for]]),
  );
  assert.deepEqual(bySeverity, {
    CDIDataImportCronOutdated: ['warning', '15m'],
    CDIDataVolumeUnusualRestartCount: ['warning', '5m'],
    CDIDefaultStorageClassDegraded: ['warning', '5m'],
    CDIMultipleDefaultVirtStorageClasses: ['warning', '5m'],
    CDINoDefaultStorageClass: ['warning', '5m'],
    CDINotReady: ['critical', '10m'],
    CDIOperatorDown: ['critical', '10m'],
    CDIStorageProfilesIncomplete: ['info', '5m'],
  });
  // the operator's namespace is in the operator-up rule
  assert.match(
    ruleGroups('cdi-system')[0]?.rules.find((r) => r.record === 'cluster:kubevirt_cdi_operator_up:sum')
      ?.expr ?? '',
    /namespace='cdi-system'/,
  );
});

void test("every alert passes upstream's linter (operator-observability-toolkit testutil)", () => {
  for (const a of alertRules()) {
    const name = a.alert ?? '';
    assert.match(name, /^[A-Z][a-zA-Z0-9]*$/, 'PascalCase');
    assert.ok(name.length <= 50, `${name}: name longer than 50 characters`);
    assert.ok(a.expr, `${name}: expression`);
    assert.ok(['critical', 'warning', 'info'].includes(a.labels?.['severity'] ?? ''), `${name}: severity`);
    assert.ok(
      ['critical', 'warning', 'none'].includes(a.labels?.['operator_health_impact'] ?? ''),
      `${name}: health impact`,
    );
    assert.equal(a.labels?.['kubernetes_operator_part_of'], 'kubevirt');
    assert.equal(a.labels?.['kubernetes_operator_component'], 'containerized-data-importer');
    assert.ok(a.annotations?.['summary'], `${name}: summary`);
    assert.equal(a.annotations?.['runbook_url'], `https://kubevirt.io/monitoring/runbooks/${name}`);
  }
});

void test('RUNBOOK_URL_TEMPLATE replaces the runbook base and must hold exactly one %s', () => {
  assert.equal(runbookUrlTemplate({}), 'https://kubevirt.io/monitoring/runbooks/%s');
  const t = runbookUrlTemplate({ RUNBOOK_URL_TEMPLATE: 'https://runbooks.example.com/cdi/%s.md' });
  assert.equal(
    alertRules(t).find((a) => a.alert === 'CDINotReady')?.annotations?.['runbook_url'],
    'https://runbooks.example.com/cdi/CDINotReady.md',
  );
  assert.throws(
    () => runbookUrlTemplate({ RUNBOOK_URL_TEMPLATE: 'https://example.com/' }),
    /must contain exactly one %s/,
  );
  assert.throws(() => runbookUrlTemplate({ RUNBOOK_URL_TEMPLATE: '%s/%s' }), /exactly one %s/);
});
