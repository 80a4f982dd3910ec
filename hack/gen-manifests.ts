// Writes the generated manifests:
//   <out>/release/cdi-operator.yaml, cdi-cr.yaml   the release (src/operator/release.ts): what an administrator applies
//   <out>/crds/*.yaml                              every CRD (src/api): the integration tests install these directly
//   <out>/cdi/*.yaml                               what the operator installs from cdi-cr.yaml, for review
//   <out>/monitoring/*.yaml                        the PrometheusRule (src/monitoring/rules.ts), for review (the
//                                                  operator installs it when the Prometheus Operator's CRDs exist)
//
//   npm run gen                      deploy/ with the local cluster's defaults (localhost:5000/<image>:dev, Always);
//                                    snapshot tests (src/api/crds.test.ts, src/operator/release.test.ts) fail when stale
//   node hack/gen-manifests.ts --out DIR --registry quay.io/example --tag v0.1.0 [--pull-policy IfNotPresent]
//        [--version v0.1.0] [--operator-image IMG] [--namespace cdi] [--verbosity 1]
//                                    the release for another cluster: kubectl create -f DIR/release/cdi-operator.yaml,
//                                    then kubectl create -f DIR/release/cdi-cr.yaml
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { crdFiles } from '../src/api/crds.ts';
import { PullPolicies, type PullPolicy } from '../src/deploy/common.ts';
import {
  cdiResource,
  defaultReleaseOptions,
  releaseImagesFrom,
  renderReleaseFiles,
  type ReleaseOptions,
} from '../src/operator/release.ts';
import { BundlePlaceholder, renderDeployFiles } from '../src/operator/render.ts';
import { renderMonitoringFiles } from '../src/monitoring/rules.ts';
import type { CDIResource } from '../src/operator/reconcile.ts';

const repoDeploy = join(import.meta.dirname, '..', 'deploy');

function fail(message: string): never {
  console.error(`gen-manifests: ${message}`);
  process.exit(2);
}

function options(): { out: string; release: ReleaseOptions } {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      registry: { type: 'string' },
      tag: { type: 'string' },
      'operator-image': { type: 'string' },
      'pull-policy': { type: 'string' },
      version: { type: 'string' },
      namespace: { type: 'string' },
      verbosity: { type: 'string' },
    },
    strict: true,
  });
  const release: ReleaseOptions = structuredClone(defaultReleaseOptions);
  if (values.registry !== undefined || values.tag !== undefined) {
    try {
      Object.assign(release, releaseImagesFrom(values.registry ?? '', values.tag ?? ''));
    } catch (e) {
      fail((e as Error).message);
    }
  }
  if (values['operator-image']) release.operatorImage = values['operator-image'];
  if (values['pull-policy'] !== undefined) {
    if (!(PullPolicies as readonly string[]).includes(values['pull-policy']))
      fail(`--pull-policy must be one of ${PullPolicies.join(', ')}, not "${values['pull-policy']}"`);
    release.pullPolicy = values['pull-policy'] as PullPolicy;
  }
  if (values.version !== undefined) {
    if (!/^[A-Za-z0-9][-A-Za-z0-9_.+]*$/.test(values.version))
      fail(`--version "${values.version}" is not a version`);
    release.version = values.version;
  }
  if (values.namespace !== undefined) {
    if (!/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(values.namespace))
      fail(`--namespace "${values.namespace}" is not a valid namespace name`);
    release.namespace = values.namespace;
  }
  if (values.verbosity !== undefined) {
    if (!/^\d+$/.test(values.verbosity))
      fail(`--verbosity must be a whole number, not "${values.verbosity}"`);
    release.verbosity = values.verbosity;
  }
  const custom = JSON.stringify(release) !== JSON.stringify(defaultReleaseOptions);
  const out = values.out === undefined ? repoDeploy : resolve(values.out);
  // deploy/ is what the snapshot tests and the README's commands read: it always holds the defaults
  if (custom && out === repoDeploy)
    fail('deploy/ holds the local defaults; render other options with --out DIR');
  return { out, release };
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

const { out, release } = options();
await writeDir(out, 'release', renderReleaseFiles(release));
await writeDir(out, 'crds', Object.fromEntries(crdFiles().map((f) => [f.file, f.yaml])));
await writeDir(
  out,
  'cdi',
  renderDeployFiles({
    cr: cdiResource(release) as unknown as CDIResource,
    config: {
      namespace: release.namespace,
      version: release.version,
      images: release.images,
      pullPolicy: release.pullPolicy,
      verbosity: release.verbosity,
    },
    // the webhook configurations and the APIService carry cdi-apiserver's CA bundle at run time; a placeholder here
    facts: { priorityClasses: new Set(), monitoring: false, apiServerBundle: BundlePlaceholder },
  }),
);
// the PrometheusRule (recording rules and alerts), for clusters with the Prometheus Operator
await writeDir(out, 'monitoring', renderMonitoringFiles(release.namespace));
