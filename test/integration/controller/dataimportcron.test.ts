// The DataImportCron controller on the real API server, with the real registry (localhost:5000) and the poller entry
// point run in this process (the CronJob's pod, which kube-controller-manager would start, cannot run here: the
// harness pins worker pods to a node that does not exist). A first digest makes the first import; a new push under
// the same tag makes a second, the DataSource switches to it, and importsToKeep: 1 deletes the first.
// The imports are real DataVolumes served by the real import controller; the test plays the volume (a static PV) and
// the kubelet (the importer pod's exit), as the other suites of this harness do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import client from 'prom-client';
import { Resources, type KubeClient, type KubeObject } from '../../../src/kube/index.ts';
import { ControllerMetrics } from '../../../src/monitoring/metrics.ts';
import type { DataImportCron, DataSource, DataVolume } from '../../../src/controller/shared/types.ts';
import { poll } from '../../../src/cmd/source-update-poller.ts';
import { pushContainerDisk } from '../../support/oci.ts';
import { seededBytes } from '../../support/images.ts';
import { eventually, kubeconfigPath } from '../kube/cluster.ts';
import { eventsFor, kubelet, useControllerSuite } from './harness.ts';

const registry = new client.Registry();
const gauges = new ControllerMetrics(registry);
let kube: KubeClient;
let ns: string;
const suite = useControllerSuite(
  'ctl-dic',
  { manager: (namespace) => ({ cdiNamespace: namespace, gauges }) },
  (s) => ({ client: kube, ns } = s),
);

const repo = `cdi-test-golden-${randomBytes(3).toString('hex')}`;
const hostUrl = `docker://localhost:5000/${repo}:latest`;

/** Pushes a container disk holding `seed`'s bytes under :latest; returns the registry's digest for the tag. */
async function push(seed: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cdi-dic-'));
  try {
    const disk = join(dir, 'disk.img');
    await writeFile(disk, seededBytes(seed, 1 << 20));
    return await pushContainerDisk(disk, repo);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const getCron = (name: string) =>
  kube.getOrUndefined<DataImportCron & KubeObject>(Resources.DataImportCron, name, ns);
const cond = (c: DataImportCron | undefined, type: string) =>
  c?.status?.conditions?.find((x) => x.type === type);
const runPoller = (cron: string) =>
  poll(['-ns', ns, '-cron', cron, '-url', hostUrl], { KUBECONFIG: kubeconfigPath, INSECURE_TLS: 'true' });
/** Plays the volume and the kubelet for an import (see the header): the claim binds, the importer pod exits 0. */
async function succeed(dv: string): Promise<void> {
  await suite.pvFor(dv);
  await eventually(`importer-${dv}`, () => suite.getPod(`importer-${dv}`));
  await kubelet.setStatus(kube, ns, `importer-${dv}`, kubelet.terminated(0, '{"message":"Import Complete"}'));
  await suite.waitPhase(dv, 'Succeeded');
}
const gauge = async (name: string): Promise<number | undefined> =>
  (await registry.getSingleMetric('kubevirt_cdi_dataimportcron_outdated')?.get())?.values.find(
    (v) => v.labels['cron_name'] === name && v.labels['namespace'] === ns,
  )?.value;

void test('a DataImportCron imports each new digest, points its DataSource at the newest and keeps importsToKeep', async () => {
  const d1 = await push('golden-v1');
  assert.match(d1, /^sha256:[a-f0-9]{64}$/);
  await kube.create(Resources.DataImportCron, {
    metadata: {
      name: 'fedora-cron',
      namespace: ns,
      labels: { 'instancetype.kubevirt.io/default-preference': 'fedora' },
    },
    spec: {
      schedule: '0 */12 * * *',
      managedDataSource: 'fedora',
      importsToKeep: 1,
      template: {
        spec: {
          source: { registry: { url: hostUrl } },
          storage: { storageClassName: suite.sc, resources: { requests: { storage: '1Gi' } } },
        },
      },
    },
  } as KubeObject);

  // the poller: a CronJob in CDI's namespace on the cron's schedule, and an initial Job that polls at once
  const cronJob = await eventually('the poller CronJob', async () => {
    const l = await kube.list<
      KubeObject & {
        spec: {
          schedule: string;
          jobTemplate: {
            spec: { template: { spec: { serviceAccountName: string; containers: { command: string[] }[] } } };
          };
        };
      }
    >(Resources.CronJob, { namespace: ns, labelSelector: 'cdi.kubevirt.io/dataImportCron=fedora-cron' });
    return l.items[0];
  });
  assert.equal(cronJob.spec.schedule, '0 */12 * * *');
  const pod = cronJob.spec.jobTemplate.spec.template.spec;
  assert.equal(pod.serviceAccountName, 'cdi-cronjob');
  assert.deepEqual(pod.containers[0]?.command.slice(-6), [
    '-ns',
    ns,
    '-cron',
    'fedora-cron',
    '-url',
    hostUrl,
  ]);
  assert.equal(cronJob.metadata?.labels?.['cdi.kubevirt.io/dataImportCronNs'], ns);
  await eventually('the initial Job', () =>
    kube.getOrUndefined(Resources.Job, `initial-job-${cronJob.metadata?.name ?? ''}`, ns),
  );

  // before any digest: the DataSource exists (empty), the cron is not up to date
  const before = await eventually('UpToDate NoDigest', async () => {
    const c = await getCron('fedora-cron');
    return cond(c, 'UpToDate')?.reason === 'NoDigest' ? c : undefined;
  });
  assert.equal(cond(before, 'UpToDate')?.status, 'False');
  const ds0 = await eventually('the managed DataSource', () =>
    kube.getOrUndefined<DataSource & KubeObject>(Resources.DataSource, 'fedora', ns),
  );
  assert.equal(ds0.metadata.labels?.['cdi.kubevirt.io/dataImportCron'], 'fedora-cron');
  assert.equal(ds0.metadata.labels?.['instancetype.kubevirt.io/default-preference'], 'fedora');

  // the poller finds the first digest: an import named after it
  assert.equal(await runPoller('fedora-cron'), d1);
  const first = `fedora-${d1.slice(7, 19)}`;
  const dv1 = await eventually(`DataVolume ${first}`, () =>
    kube.getOrUndefined<DataVolume & KubeObject>(Resources.DataVolume, first, ns),
  );
  assert.equal(dv1.spec.source?.registry?.url, `docker://localhost:5000/${repo}@${d1}`);
  assert.equal(dv1.metadata.labels?.['cdi.kubevirt.io/dataImportCron'], 'fedora-cron');
  assert.equal(dv1.metadata.annotations?.['cdi.kubevirt.io/storage.bind.immediate.requested'], 'true');
  // Outdated lasts until the import is recorded; then the import is in progress (the DataVolume's phase is said)
  const importing = await eventually('UpToDate False: ImportProgressing', async () => {
    const c = await getCron('fedora-cron');
    return cond(c, 'UpToDate')?.reason === 'ImportProgressing' ? c : undefined;
  });
  assert.equal(cond(importing, 'UpToDate')?.status, 'False');
  assert.equal(cond(importing, 'UpToDate')?.message, 'Import is progressing');
  assert.match(cond(importing, 'Progressing')?.message ?? '', /^Import DataVolume phase /);
  assert.deepEqual(importing.status?.currentImports, [{ DataVolumeName: first, Digest: d1 }]);
  assert.equal(
    importing.status?.lastExecutionTimestamp,
    importing.metadata.annotations?.['cdi.kubevirt.io/storage.import.lastCronTime'],
  );
  assert.equal(await gauge('fedora-cron'), 1);

  await succeed(first);
  const upToDate = await eventually('UpToDate True', async () => {
    const c = await getCron('fedora-cron');
    return cond(c, 'UpToDate')?.status === 'True' ? c : undefined;
  });
  assert.equal(cond(upToDate, 'UpToDate')?.reason, 'UpToDate');
  assert.equal(cond(upToDate, 'UpToDate')?.message, 'Latest import is up to date');
  assert.equal(cond(upToDate, 'Progressing')?.reason, 'NoImport');
  assert.deepEqual(upToDate.status?.lastImportedPVC, { namespace: ns, name: first });
  assert.equal(upToDate.status?.sourceFormat, 'pvc');
  const ds1 = await eventually('DataSource → first import, Ready', async () => {
    const ds = await kube.get<DataSource & KubeObject>(Resources.DataSource, 'fedora', ns);
    return ds.spec.source.pvc?.name === first && ds.status?.conditions?.[0]?.status === 'True'
      ? ds
      : undefined;
  });
  assert.deepEqual(ds1.status?.source, { pvc: { namespace: ns, name: first } });
  assert.equal(await gauge('fedora-cron'), 0);

  // polling again with nothing new changes nothing
  assert.equal(await runPoller('fedora-cron'), d1);

  // a new push under the same tag: a second import; once it succeeded the DataSource switches and the first is gone
  const d2 = await push('golden-v2');
  assert.notEqual(d2, d1);
  assert.equal(await runPoller('fedora-cron'), d2);
  const second = `fedora-${d2.slice(7, 19)}`;
  await eventually(`DataVolume ${second}`, () => kube.getOrUndefined(Resources.DataVolume, second, ns));
  const outdated = await eventually('the second import recorded', async () => {
    const c = await getCron('fedora-cron');
    return c?.status?.currentImports?.[0]?.DataVolumeName === second ? c : undefined;
  });
  assert.equal(cond(outdated, 'UpToDate')?.status, 'False');
  assert.equal(
    (await kube.get<DataSource & KubeObject>(Resources.DataSource, 'fedora', ns)).spec.source.pvc?.name,
    first,
    'the DataSource stays on the first import until the second succeeded',
  );
  await succeed(second);
  await eventually('DataSource → second import', async () => {
    const ds = await kube.get<DataSource & KubeObject>(Resources.DataSource, 'fedora', ns);
    return ds.spec.source.pvc?.name === second ? ds : undefined;
  });
  await eventually('the first import garbage-collected (importsToKeep: 1)', async () =>
    (await kube.getOrUndefined(Resources.DataVolume, first, ns)) === undefined ? true : undefined,
  );
  assert.ok(await kube.getOrUndefined(Resources.DataVolume, second, ns), 'the newest import stays');
  assert.equal(cond(await getCron('fedora-cron'), 'UpToDate')?.status, 'True');

  // deleted: the poller goes with it (retentionPolicy RetainAll: the imports and the DataSource stay)
  await kube.delete(Resources.DataImportCron, 'fedora-cron', { namespace: ns });
  await eventually('the CronJob deleted', async () =>
    (await kube.list(Resources.CronJob, { namespace: ns })).items.length === 0 ? true : undefined,
  );
  assert.ok(await kube.getOrUndefined(Resources.DataSource, 'fedora', ns));
  assert.ok(await kube.getOrUndefined(Resources.DataVolume, second, ns));
  assert.equal(await gauge('fedora-cron'), undefined, 'the series goes with the cron');
});

void test('a DataSource already managed by another DataImportCron is left alone, with a warning', async () => {
  const spec = (ds: string) => ({
    schedule: '',
    managedDataSource: ds,
    template: {
      spec: {
        source: { registry: { url: hostUrl } },
        storage: { resources: { requests: { storage: '1Gi' } } },
      },
    },
  });
  await kube.create(Resources.DataImportCron, {
    metadata: { name: 'owner', namespace: ns },
    spec: spec('shared'),
  } as KubeObject);
  await eventually('shared DataSource', () => kube.getOrUndefined(Resources.DataSource, 'shared', ns));
  await kube.create(Resources.DataImportCron, {
    metadata: { name: 'intruder', namespace: ns },
    spec: spec('shared'),
  } as KubeObject);
  const ev = await eventually('ErrDataSourceAlreadyManaged', async () =>
    (await eventsFor(kube, ns, 'DataImportCron', 'intruder')).find(
      (e) => e.reason === 'ErrDataSourceAlreadyManaged',
    ),
  );
  assert.equal(ev.type, 'Warning');
  assert.equal(ev.message, 'DataSource shared is already managed by DataImportCron owner');
  const ds = await kube.get<DataSource & KubeObject>(Resources.DataSource, 'shared', ns);
  assert.equal(ds.metadata.labels?.['cdi.kubevirt.io/dataImportCron'], 'owner');
  // no schedule: no poller
  assert.equal(
    (
      await kube.list(Resources.CronJob, {
        namespace: ns,
        labelSelector: 'cdi.kubevirt.io/dataImportCron=owner',
      })
    ).items.length,
    0,
  );
});
