// Writes the generated manifests: the CRDs from src/api into <out>/crds, the controller's RBAC, the user ClusterRoles,
// the Deployment and the Service from src/deploy into <out>/cdi, the PrometheusRule from src/monitoring into
// <out>/monitoring.
//
//   npm run gen                      deploy/ with the local harness's defaults (localhost:5000 images, :dev, Always);
//                                    snapshot tests (src/api/crds.test.ts, src/deploy/controller.test.ts) fail when stale
//   node hack/gen-manifests.ts --out DIR --registry quay.io/example --tag v0.1.0 [--pull-policy IfNotPresent]
//        [--controller-image IMG] [--importer-image IMG] [--namespace cdi] [--replicas 1]
//                                    the same manifests for another cluster: kubectl apply --server-side -f DIR/crds -f DIR/cdi
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { crdFiles } from '../src/api/crds.ts';
import {
  PullPolicies,
  defaultDeployOptions,
  imagesFrom,
  renderDeployFiles,
  type ControllerDeployOptions,
  type PullPolicy,
} from '../src/deploy/controller.ts';
import { defaultUploadDeployOptions, renderUploadDeployFiles } from '../src/deploy/upload.ts';
import { renderMonitoringFiles } from '../src/monitoring/rules.ts';

const repoDeploy = join(import.meta.dirname, '..', 'deploy');

function fail(message: string): never {
  console.error(`gen-manifests: ${message}`);
  process.exit(2);
}

function options(): { out: string; deploy: ControllerDeployOptions } {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      registry: { type: 'string' },
      tag: { type: 'string' },
      'controller-image': { type: 'string' },
      'importer-image': { type: 'string' },
      'pull-policy': { type: 'string' },
      namespace: { type: 'string' },
      replicas: { type: 'string' },
    },
    strict: true,
  });
  const deploy: ControllerDeployOptions = { ...defaultDeployOptions };
  if (values.registry !== undefined || values.tag !== undefined) {
    try {
      Object.assign(deploy, imagesFrom(values.registry ?? '', values.tag ?? ''));
    } catch (e) {
      fail((e as Error).message);
    }
  }
  if (values['controller-image']) deploy.controllerImage = values['controller-image'];
  if (values['importer-image']) deploy.importerImage = values['importer-image'];
  if (values['pull-policy'] !== undefined) {
    if (!(PullPolicies as readonly string[]).includes(values['pull-policy']))
      fail(`--pull-policy must be one of ${PullPolicies.join(', ')}, not "${values['pull-policy']}"`);
    deploy.pullPolicy = values['pull-policy'] as PullPolicy;
  }
  if (values.namespace !== undefined) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(values.namespace))
      fail(`--namespace "${values.namespace}" is not a valid namespace name`);
    deploy.namespace = values.namespace;
  }
  if (values.replicas !== undefined) {
    const n = Number(values.replicas);
    if (!Number.isInteger(n) || n < 0) fail(`--replicas must be a whole number, not "${values.replicas}"`);
    deploy.replicas = n;
  }
  const custom = JSON.stringify(deploy) !== JSON.stringify(defaultDeployOptions);
  const out = values.out === undefined ? repoDeploy : resolve(values.out);
  // deploy/ is what the snapshot tests and the local harness read: it always holds the defaults
  if (custom && out === repoDeploy)
    fail('deploy/ holds the local defaults; render other options with --out DIR');
  return { out, deploy };
}

/** Writes `files` into <out>/<sub>, removing YAML files there that are no longer generated. */
async function writeDir(out: string, sub: string, files: Record<string, string>): Promise<void> {
  const dir = join(out, sub);
  await mkdir(dir, { recursive: true });
  for (const name of await readdir(dir)) {
    if (name.endsWith('.yaml') && !(name in files)) await rm(join(dir, name));
  }
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  console.log(`wrote ${Object.keys(files).length} files to ${join(out, sub)}`);
}

const { out, deploy } = options();
await writeDir(out, 'crds', Object.fromEntries(crdFiles().map((f) => [f.file, f.yaml])));
await writeDir(out, 'cdi', renderDeployFiles(deploy));
// cdi-apiserver and cdi-uploadproxy: same registry, tag and pull policy as the controller.
const image = (name: string): string => deploy.controllerImage.replace(/cdi-controller(?=[:@]|$)/, name);
await writeDir(
  out,
  'upload',
  renderUploadDeployFiles({
    ...defaultUploadDeployOptions,
    namespace: deploy.namespace,
    apiServerImage: image('cdi-apiserver'),
    uploadProxyImage: image('cdi-uploadproxy'),
    pullPolicy: deploy.pullPolicy,
  }),
);
// the PrometheusRule (recording rules and alerts), for clusters with the Prometheus Operator
await writeDir(out, 'monitoring', renderMonitoringFiles(deploy.namespace));
