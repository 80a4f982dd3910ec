// The operator and the Prometheus Operator's CRDs on the full cluster: once prometheusrules and
// servicemonitors.monitoring.coreos.com are served, cdi-operator creates PrometheusRule prometheus-cdi-rules and
// ServiceMonitor service-monitor-cdi (with the token Secret and the cdi-monitoring Role/RoleBinding) in the CDI
// namespace, with upstream's names and the contents src/operator/monitoring.ts renders (the rules themselves are
// unit-tested with promtool in test/monitoring); deleting the CDI resource removes them while the namespace is
// still there.
//
// The CRDs are cluster-scoped, so the suite is careful with the shared cluster: it installs the stand-in CRDs of
// test/fixtures/prometheus-operator/crds.yaml only where no such CRD exists (a real Prometheus Operator's are used as
// they are and never removed), removes only those it installed (by their label) after CDI is gone (so that no
// running operator watches a kind that disappears), and puts back a CDI it found installed. Holds the cluster lock:
//   flock -o /work/cluster-tests.lock node --test test/e2e/operator-monitoring.test.ts
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';
import { PrometheusLabel, type Obj } from '../../src/deploy/common.ts';
import { Resources, type KubeClient, type KubeObject } from '../../src/kube/index.ts';
import {
  monitoringManifests,
  PrometheusRuleName,
  ServiceMonitorName,
} from '../../src/operator/monitoring.ts';
import type { ReleaseOptions } from '../../src/operator/release.ts';
import { Kinds } from '../../src/operator/resources.ts';
import { clusterClient, eventually } from '../integration/kube/cluster.ts';
import { imagesEnv, requireFullCluster } from './harness.ts';
import { getCdi, installCdi, releaseFor, uninstallCdi, waitAvailable } from './operator-install.ts';

const FixtureLabel = 'cdi-ts-test';
const FixtureValue = 'prometheus-operator-crds';

let client: KubeClient;
let release: ReleaseOptions;
let ns = 'cdi';
/** CDI was installed before the suite: it is put back at the end */
let preinstalled = false;
/** the CRDs this suite created (and removes) */
const created: string[] = [];

type Crd = KubeObject & { status?: { conditions?: { type: string; status: string }[] } };
type Spec = KubeObject & { spec?: Obj };

async function installCrds(): Promise<void> {
  const text = await readFile(join(import.meta.dirname, '../fixtures/prometheus-operator/crds.yaml'), 'utf8');
  for (const doc of YAML.parseAllDocuments(text)) {
    const crd = doc.toJS() as Crd;
    const name = crd.metadata?.name ?? '';
    const live = await client.getOrUndefined<Crd>(Resources.CustomResourceDefinition, name);
    if (live && live.metadata?.labels?.[FixtureLabel] !== FixtureValue) continue; // someone's real CRD: use it
    if (!live) await client.create(Resources.CustomResourceDefinition, crd);
    created.push(name);
    await eventually(`CRD ${name} Established`, async () => {
      const got = await client.get<Crd>(Resources.CustomResourceDefinition, name);
      return got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    });
  }
}

async function removeCrds(): Promise<void> {
  for (const name of created.splice(0)) {
    await client.delete(Resources.CustomResourceDefinition, name).catch(() => {});
    await eventually(
      `CRD ${name} removed`,
      async () => (await client.getOrUndefined(Resources.CustomResourceDefinition, name)) === undefined,
      120_000,
      500,
    );
  }
}

before(async () => {
  client = clusterClient();
  await requireFullCluster(client);
  release = releaseFor(imagesEnv()['CDI_IMAGE_TAG'] ?? 'dev');
  ns = release.namespace;
  await installCrds();
  const existing = await getCdi(client);
  preinstalled = existing !== undefined;
  if (existing) await waitAvailable(client, existing.status?.targetVersion ?? release.version);
  else await installCdi(client, release);
});

after(async () => {
  // CDI first (its operator watches the monitoring kinds), then the CRDs, then CDI back as it was found
  if (release && (await getCdi(client)))
    await uninstallCdi(client, release).catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
  await removeCrds().catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
  if (preinstalled)
    await installCdi(client, release).catch((e: unknown) => console.error(`cleanup: ${String(e)}`));
});

const rendered = (kind: string): Obj => {
  const o = monitoringManifests(ns).find((x) => x['kind'] === kind);
  assert.ok(o, kind);
  return o;
};

void test('with the Prometheus Operator CRDs served, the operator creates prometheus-cdi-rules and service-monitor-cdi', async () => {
  // the operator looks for the CRDs on its resync: a wait limit, not a timing assertion
  const rule = await eventually(
    `PrometheusRule ${ns}/${PrometheusRuleName}`,
    () => client.getOrUndefined<Spec>(Kinds.PrometheusRule, PrometheusRuleName, ns),
    240_000,
    1000,
  );
  assert.equal(PrometheusRuleName, 'prometheus-cdi-rules');
  assert.deepEqual(rule.spec, rendered('PrometheusRule')['spec']);
  assert.equal(rule.metadata?.labels?.[PrometheusLabel], 'true');
  assert.equal(rule.metadata?.ownerReferences?.[0]?.kind, 'CDI');
  const rules = (
    (rule.spec?.['groups'] ?? []) as { rules: { alert?: string; labels?: Obj; annotations?: Obj }[] }[]
  )
    .flatMap((g) => g.rules)
    .filter((r) => r.alert);
  const alerts = new Set(rules.map((r) => r.alert));
  for (const a of [
    'CDIOperatorDown',
    'CDINotReady',
    'CDIDataVolumeUnusualRestartCount',
    'CDIStorageProfilesIncomplete',
    'CDIDataImportCronOutdated',
    'CDINoDefaultStorageClass',
    'CDIMultipleDefaultVirtStorageClasses',
    'CDIDefaultStorageClassDegraded',
  ])
    assert.ok(alerts.has(a), `alert ${a} in ${PrometheusRuleName}`);
  for (const r of rules) {
    assert.ok(r.labels?.['severity'], `${r.alert} has a severity`);
    assert.match(
      String(r.annotations?.['runbook_url']),
      new RegExp(`${r.alert}$`),
      `${r.alert} links its runbook`,
    );
  }

  const monitor = await eventually(
    `ServiceMonitor ${ns}/${ServiceMonitorName}`,
    () => client.getOrUndefined<Spec>(Kinds.ServiceMonitor, ServiceMonitorName, ns),
    60_000,
    1000,
  );
  assert.equal(ServiceMonitorName, 'service-monitor-cdi');
  assert.deepEqual(monitor.spec, rendered('ServiceMonitor')['spec']);
  assert.equal(monitor.metadata?.ownerReferences?.[0]?.kind, 'CDI');
  // what the ServiceMonitor scrapes with, and what lets prometheus-k8s discover the endpoints (applied after the
  // ServiceMonitor in the same reconcile: waited for)
  for (const [r, name] of [
    [Resources.Secret, 'cdi-metrics-reader-token'],
    [Kinds.Role, 'cdi-monitoring'],
    [Kinds.RoleBinding, 'cdi-monitoring'],
  ] as const)
    await eventually(`${r.kind} ${ns}/${name}`, () => client.getOrUndefined(r, name, ns), 60_000, 500);
});

void test('deleting the CDI resource removes the PrometheusRule and the ServiceMonitor', async () => {
  assert.ok(await getCdi(client), 'CDI is installed');
  await client.delete(Resources.CDI, 'cdi');
  await eventually(
    'CDI cdi removed by the operator',
    async () => (await getCdi(client)) === undefined,
    300_000,
    1000,
  );
  // the operator releases its finalizer only once what it owns is gone (uninstall.ts), and the namespace is still
  // there: so these are gone because the operator removed them, not with the namespace
  assert.ok(await client.getOrUndefined(Resources.Namespace, ns), `namespace ${ns} still exists`);
  assert.equal(await client.getOrUndefined(Kinds.PrometheusRule, PrometheusRuleName, ns), undefined);
  assert.equal(await client.getOrUndefined(Kinds.ServiceMonitor, ServiceMonitorName, ns), undefined);
  assert.equal(await client.getOrUndefined(Resources.Secret, 'cdi-metrics-reader-token', ns), undefined);
  await uninstallCdi(client, release);
});
