// The recording rules and alerts of src/monitoring/rules.ts, evaluated by Debian's promtool (package prometheus;
// hack/run.sh test installs it): for every alert, series that make it fire (after its `for`) and series that must
// not, in `promtool test rules` files generated here from the same rule data the PrometheusRule is rendered from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import YAML from 'yaml';
import { alertRules, alertSpecs, ruleFileYaml } from '../../src/monitoring/rules.ts';

const run = promisify(execFile);
const NS = 'cdi';

interface Series {
  series: string;
  values: string;
}
/** An alert expected to fire: its labels beyond the rule's own; the summary when it is templated. */
interface Firing {
  labels?: Record<string, string>;
  summary?: string;
}
interface Case {
  /** what the series describe */
  what: string;
  series: Series[];
  at: string;
  firing: Firing[];
}

const rules = new Map(alertRules().map((r) => [r.alert ?? '', r]));

/** promtool's exp_alerts for `alert`: the rule's labels and annotations plus what the case adds. */
function expected(alert: string, f: Firing): Record<string, unknown> {
  const r = rules.get(alert);
  assert.ok(r, `no alert ${alert}`);
  return {
    exp_labels: { ...r.labels, ...f.labels },
    exp_annotations: { ...r.annotations, ...(f.summary ? { summary: f.summary } : {}) },
  };
}

async function promtool(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('promtool', args, { cwd });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { code?: number | string; stdout?: string; stderr?: string };
    if (err.code === 'ENOENT')
      throw new Error(
        "promtool not found: install Debian's prometheus package (hack/run.sh test does: ensure_debs)",
      );
    return { code: Number(err.code), out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

/** Runs the cases of one alert through `promtool test rules`; fails with promtool's own diff. */
async function checkAlert(alert: string, cases: Case[]): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cdi-promtool-'));
  try {
    await writeFile(join(dir, 'rules.yaml'), ruleFileYaml(NS));
    const tests = {
      rule_files: ['rules.yaml'],
      evaluation_interval: '1m',
      tests: cases.map((c) => ({
        name: `${alert}: ${c.what}`,
        interval: '1m',
        input_series: c.series,
        alert_rule_test: [
          { eval_time: c.at, alertname: alert, exp_alerts: c.firing.map((f) => expected(alert, f)) },
        ],
      })),
    };
    await writeFile(join(dir, 'tests.yaml'), YAML.stringify(tests, { lineWidth: 0 }));
    const r = await promtool(['test', 'rules', 'tests.yaml'], dir);
    assert.equal(r.code, 0, `promtool test rules failed:\n${r.out}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const info = (labels: Record<string, string>): string => {
  const all = {
    storageclass: 'gold',
    provisioner: 'csi.example.com',
    complete: 'true',
    default: 'false',
    virtdefault: 'false',
    rwx: 'true',
    smartclone: 'true',
    degraded: 'false',
    ...labels,
  };
  return `kubevirt_cdi_storageprofile_info{${Object.entries(all)
    .map(([k, v]) => `${k}="${v}"`)
    .join(',')}}`;
};
const restarts = (pod: string, container: string): string =>
  `kube_pod_container_status_restarts_total{namespace="vms",pod="${pod}",container="${container}"}`;
const scrape = 'job="cdi-prometheus-metrics",namespace="cdi",pod="cdi-deployment-1"';

const cases: Record<string, Case[]> = {
  CDIOperatorDown: [
    {
      what: 'no operator pod up for 10m',
      series: [{ series: `up{namespace="${NS}",pod="cdi-operator-abc",job="cdi-operator"}`, values: '0x20' }],
      at: '11m',
      firing: [{}],
    },
    {
      what: 'no up series at all (or on vector(0))',
      series: [{ series: 'unrelated', values: '1x20' }],
      at: '11m',
      firing: [{}],
    },
    {
      what: 'an operator pod in another namespace does not count',
      series: [{ series: 'up{namespace="other",pod="cdi-operator-abc"}', values: '1x20' }],
      at: '11m',
      firing: [{}],
    },
    {
      what: 'the operator is up',
      series: [{ series: `up{namespace="${NS}",pod="cdi-operator-abc"}`, values: '1x20' }],
      at: '15m',
      firing: [],
    },
    {
      what: 'down for less than 10m',
      series: [{ series: `up{namespace="${NS}",pod="cdi-operator-abc"}`, values: '1x10 0x10' }],
      at: '19m',
      firing: [],
    },
  ],
  CDINotReady: [
    {
      what: 'cr_ready 0 for 10m',
      series: [{ series: `kubevirt_cdi_cr_ready{${scrape}}`, values: '0x20' }],
      at: '11m',
      firing: [{ labels: { job: 'cdi-prometheus-metrics', namespace: 'cdi', pod: 'cdi-deployment-1' } }],
    },
    {
      what: 'ready',
      series: [{ series: `kubevirt_cdi_cr_ready{${scrape}}`, values: '1x20' }],
      at: '15m',
      firing: [],
    },
    {
      what: 'still initializing (-1)',
      series: [{ series: `kubevirt_cdi_cr_ready{${scrape}}`, values: '-1x20' }],
      at: '15m',
      firing: [],
    },
    {
      what: 'not ready for less than 10m',
      series: [{ series: `kubevirt_cdi_cr_ready{${scrape}}`, values: '1x12 0x8' }],
      at: '20m',
      firing: [],
    },
  ],
  CDIDataVolumeUnusualRestartCount: [
    {
      what: 'an importer restarted 4 times',
      series: [{ series: restarts('importer-dv1', 'importer'), values: '4x10' }],
      at: '6m',
      firing: [{}],
    },
    {
      what: 'an upload server restarted 5 times',
      series: [{ series: restarts('cdi-upload-dv2', 'cdi-upload-server'), values: '5x10' }],
      at: '6m',
      firing: [{}],
    },
    {
      what: 'a clone source restarted 9 times',
      series: [{ series: restarts('0a1b-source-pod', 'cdi-clone-source'), values: '9x10' }],
      at: '6m',
      firing: [{}],
    },
    {
      what: 'all three at once: one alert',
      series: [
        { series: restarts('importer-dv1', 'importer'), values: '4x10' },
        { series: restarts('cdi-upload-dv2', 'cdi-upload-server'), values: '4x10' },
        { series: restarts('x-source-pod', 'cdi-clone-source'), values: '4x10' },
      ],
      at: '6m',
      firing: [{}],
    },
    {
      what: '3 restarts is not unusual',
      series: [{ series: restarts('importer-dv1', 'importer'), values: '3x10' }],
      at: '8m',
      firing: [],
    },
    {
      what: 'pods and containers that are not CDI workers',
      series: [
        { series: restarts('web-1', 'importer'), values: '9x10' },
        { series: restarts('importer-dv1', 'sidecar'), values: '9x10' },
        { series: restarts('cdi-upload-dv2', 'other'), values: '9x10' },
        { series: restarts('x-source-pod-2', 'cdi-clone-source'), values: '9x10' },
      ],
      at: '8m',
      firing: [],
    },
    {
      what: 'restarting for less than 5m',
      series: [{ series: restarts('importer-dv1', 'importer'), values: '0x5 4x4' }],
      at: '9m',
      firing: [],
    },
  ],
  CDIStorageProfilesIncomplete: [
    {
      what: 'an incomplete profile',
      series: [
        {
          series: info({ storageclass: 'local', provisioner: 'example.com/local', complete: 'false' }),
          values: '1x10',
        },
        { series: info({}), values: '1x10' },
      ],
      at: '6m',
      firing: [
        {
          labels: { storageclass: 'local', provisioner: 'example.com/local' },
          summary:
            'Incomplete StorageProfile local, accessMode/volumeMode cannot be inferred by CDI for PVC population request',
        },
      ],
    },
    { what: 'every profile complete', series: [{ series: info({}), values: '1x10' }], at: '8m', firing: [] },
    {
      what: 'incomplete for less than 5m',
      series: [{ series: info({ complete: 'false' }), values: '_x5 1x4' }],
      at: '9m',
      firing: [],
    },
  ],
  CDIDataImportCronOutdated: [
    {
      what: 'a cron outdated for 15m',
      series: [
        {
          series:
            'kubevirt_cdi_dataimportcron_outdated{job="cdi-prometheus-metrics",namespace="golden",cron_name="fedora",pending="false"}',
          values: '1x20',
        },
      ],
      at: '16m',
      // sum by(namespace,cron_name): the scrape's other labels are gone
      firing: [{ labels: { namespace: 'golden', cron_name: 'fedora' } }],
    },
    {
      what: 'outdated because its DataVolume waits for a default class (pending)',
      series: [
        {
          series:
            'kubevirt_cdi_dataimportcron_outdated{namespace="golden",cron_name="fedora",pending="true"}',
          values: '1x20',
        },
      ],
      at: '18m',
      firing: [],
    },
    {
      what: 'up to date',
      series: [
        {
          series:
            'kubevirt_cdi_dataimportcron_outdated{namespace="golden",cron_name="fedora",pending="false"}',
          values: '0x20',
        },
      ],
      at: '18m',
      firing: [],
    },
    {
      what: 'outdated for less than 15m',
      series: [
        {
          series:
            'kubevirt_cdi_dataimportcron_outdated{namespace="golden",cron_name="fedora",pending="false"}',
          values: '0x10 1x10',
        },
      ],
      at: '20m',
      firing: [],
    },
  ],
  CDINoDefaultStorageClass: [
    {
      what: 'no default class and a DataVolume pending',
      series: [
        { series: info({}), values: '1x10' },
        { series: `kubevirt_cdi_datavolume_pending{${scrape}}`, values: '2x10' },
      ],
      at: '6m',
      firing: [{}],
    },
    {
      what: 'no default class, nothing pending',
      series: [
        { series: info({}), values: '1x10' },
        { series: `kubevirt_cdi_datavolume_pending{${scrape}}`, values: '0x10' },
      ],
      at: '8m',
      firing: [],
    },
    {
      what: 'a Kubernetes default class',
      series: [
        { series: info({ default: 'true' }), values: '1x10' },
        { series: `kubevirt_cdi_datavolume_pending{${scrape}}`, values: '2x10' },
      ],
      at: '8m',
      firing: [],
    },
    {
      what: 'a default virtualization class',
      series: [
        { series: info({ virtdefault: 'true' }), values: '1x10' },
        { series: `kubevirt_cdi_datavolume_pending{${scrape}}`, values: '2x10' },
      ],
      at: '8m',
      firing: [],
    },
  ],
  CDIMultipleDefaultVirtStorageClasses: [
    {
      what: 'two default virtualization classes',
      series: [
        { series: info({ storageclass: 'a', virtdefault: 'true' }), values: '1x10' },
        { series: info({ storageclass: 'b', virtdefault: 'true' }), values: '1x10' },
      ],
      at: '6m',
      firing: [{}],
    },
    {
      what: 'one default virtualization class and a Kubernetes default',
      series: [
        { series: info({ storageclass: 'a', virtdefault: 'true' }), values: '1x10' },
        { series: info({ storageclass: 'b', default: 'true' }), values: '1x10' },
      ],
      at: '8m',
      firing: [],
    },
  ],
  CDIDefaultStorageClassDegraded: [
    {
      what: 'the default class is degraded',
      series: [
        { series: info({ default: 'true', rwx: 'false', degraded: 'true' }), values: '1x10' },
        { series: info({ storageclass: 'other' }), values: '1x10' },
      ],
      at: '6m',
      firing: [{}],
    },
    {
      what: 'the default virtualization class is degraded',
      series: [
        { series: info({ virtdefault: 'true', smartclone: 'false', degraded: 'true' }), values: '1x10' },
      ],
      at: '6m',
      firing: [{}],
    },
    {
      what: 'the default class is fine',
      series: [{ series: info({ default: 'true' }), values: '1x10' }],
      at: '8m',
      firing: [],
    },
    {
      what: 'the Kubernetes default is degraded but the virtualization default is not',
      series: [
        { series: info({ storageclass: 'a', default: 'true', degraded: 'true' }), values: '1x10' },
        { series: info({ storageclass: 'b', virtdefault: 'true' }), values: '1x10' },
      ],
      at: '8m',
      firing: [],
    },
    {
      what: 'no default class at all (another alert covers that)',
      series: [{ series: info({ degraded: 'true' }), values: '1x10' }],
      at: '8m',
      firing: [],
    },
  ],
};

void test('promtool accepts the rule file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdi-promtool-'));
  try {
    await writeFile(join(dir, 'rules.yaml'), ruleFileYaml(NS));
    const r = await promtool(['check', 'rules', 'rules.yaml'], dir);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /SUCCESS: 16 rules found/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

void test('every alert has firing and non-firing cases', () => {
  assert.deepEqual(Object.keys(cases).sort(), alertSpecs.map((a) => a.alert).sort());
  for (const [alert, cs] of Object.entries(cases)) {
    assert.ok(
      cs.some((c) => c.firing.length > 0),
      `${alert} never fires`,
    );
    assert.ok(
      cs.some((c) => c.firing.length === 0),
      `${alert} has no case where it stays quiet`,
    );
  }
});

for (const [alert, cs] of Object.entries(cases)) {
  void test(`${alert}: ${cs.map((c) => `${c.firing.length ? 'fires' : 'quiet'} when ${c.what}`).join('; ')}`, () =>
    checkAlert(alert, cs));
}

void test('the recording rules count restarts above 3 per worker kind and report the operator pods that are up', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cdi-promtool-'));
  try {
    await writeFile(join(dir, 'rules.yaml'), ruleFileYaml(NS));
    const tests = {
      rule_files: ['rules.yaml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            { series: restarts('importer-a', 'importer'), values: '4x5' },
            { series: restarts('importer-b', 'importer'), values: '7x5' },
            { series: restarts('importer-c', 'importer'), values: '3x5' },
            { series: restarts('cdi-upload-a', 'cdi-upload-server'), values: '5x5' },
            { series: `up{namespace="${NS}",pod="cdi-operator-1"}`, values: '1x5' },
            { series: `up{namespace="${NS}",pod="cdi-operator-2"}`, values: '1x5' },
            { series: `up{namespace="${NS}",pod="cdi-deployment-1"}`, values: '1x5' },
          ],
          promql_expr_test: [
            ['cluster:kubevirt_cdi_import_pods_high_restart:count', 2],
            ['kubevirt_cdi_import_pods_high_restart', 2],
            ['cluster:kubevirt_cdi_upload_pods_high_restart:count', 1],
            ['kubevirt_cdi_upload_pods_high_restart', 1],
            ['cluster:kubevirt_cdi_clone_pods_high_restart:count', 0],
            ['kubevirt_cdi_clone_pods_high_restart', 0],
            ['cluster:kubevirt_cdi_operator_up:sum', 2],
            ['kubevirt_cdi_operator_up', 2],
          ].map(([expr, value]) => ({
            expr,
            eval_time: '2m',
            exp_samples: [{ labels: String(expr), value }],
          })),
        },
      ],
    };
    await writeFile(join(dir, 'tests.yaml'), YAML.stringify(tests, { lineWidth: 0 }));
    const r = await promtool(['test', 'rules', 'tests.yaml'], dir);
    assert.equal(r.code, 0, `promtool test rules failed:\n${r.out}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
