// Our generated CRDs against upstream's, field by field: every property, type, format, required list, enum,
// pattern, limit, default and x-kubernetes-* marker of upstream v1.66's controller-gen output
// (pkg/operator/resources/crds_generated.go) must be ours too, and ours must have nothing upstream lacks.
// Descriptions are ours and not compared. Needs upstream's git directory (read-only, nothing is copied into
// this repository): CDI_UPSTREAM_GIT, default /work/.mirror/kubevirt+containerized-data-importer/repo; the test
// is skipped, saying so, when it is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import YAML from 'yaml';
import { crds } from '../../../src/api/crds.ts';

type Schema = Record<string, unknown>;

const gitDir = process.env.CDI_UPSTREAM_GIT ?? '/work/.mirror/kubevirt+containerized-data-importer/repo';

/** Upstream's CRDs by kind, read from the Go source that embeds them as raw strings. */
function upstreamCrds(): Map<string, Schema> {
  const go = execFileSync('git', ['-C', gitDir, 'show', 'HEAD:pkg/operator/resources/crds_generated.go'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  // A backquote inside a Go raw string is written as ` + "`" + `.
  const text = go.split('` + "`" + `').join('\u0001');
  const out = new Map<string, Schema>();
  for (const m of text.matchAll(/\t"[a-z]+": `([\s\S]*?)`,?\n/g)) {
    const crd = YAML.parse((m[1] ?? '').split('\u0001').join('`')) as { spec: { names: { kind: string } } };
    out.set(crd.spec.names.kind, crd);
  }
  return out;
}

const canon = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Schema).sort(([a], [b]) => a.localeCompare(b)))
      : x,
  );

/**
 * Fields we add on purpose (additive, so upstream's clients ignore them), each with the reason. Anything else that
 * upstream lacks is a mistake.
 */
const OUR_ADDITIONS: Record<string, string> = {
  // issue 8: invalid CDIConfig settings set a condition (Valid), not only a log line and a retry
  'CDIConfig.status.conditions': 'the Valid condition (docs/controllers.md)',
  // the checksum upstream has on http only, on the other sources whose bytes the importer streams too
  ...Object.fromEntries(
    ['DataVolume.spec', 'DataImportCron.spec.template.spec', 'VolumeImportSource.spec'].flatMap((at) =>
      ['s3', 'gcs', 'registry'].map((s) => [
        `${at}.source.${s}.checksum`,
        'a checksum on s3, gcs and registry too (docs/api.md)',
      ]),
    ),
  ),
};

/** Every difference between two schema trees, as "path: what"; descriptions are ignored. */
function diff(ours: Schema, theirs: Schema, path: string, out: string[]): void {
  for (const key of new Set([...Object.keys(ours), ...Object.keys(theirs)])) {
    if (key === 'description') continue;
    const a = ours[key];
    const b = theirs[key];
    if (key === 'properties') {
      const pa = (a ?? {}) as Record<string, Schema>;
      const pb = (b ?? {}) as Record<string, Schema>;
      for (const name of new Set([...Object.keys(pa), ...Object.keys(pb)])) {
        if (!pa[name]) out.push(`${path}.${name}: missing in ours`);
        else if (!pb[name]) {
          if (!OUR_ADDITIONS[`${path}.${name}`]) out.push(`${path}.${name}: not in upstream`);
        } else diff(pa[name], pb[name], `${path}.${name}`, out);
      }
    } else if (
      (key === 'items' || key === 'additionalProperties') &&
      typeof a === 'object' &&
      typeof b === 'object'
    ) {
      diff(a as Schema, b as Schema, `${path}${key === 'items' ? '[]' : '.*'}`, out);
    } else {
      const norm = (x: unknown): string =>
        canon(key === 'required' && Array.isArray(x) ? [...(x as string[])].sort() : x);
      if (norm(a) !== norm(b)) out.push(`${path}: ${key} is ${norm(a)} here, ${norm(b)} upstream`);
    }
  }
}

void test(
  'every generated CRD has exactly the fields, names, columns and subresources of upstream v1.66',
  { skip: existsSync(gitDir) ? false : `no upstream git directory at ${gitDir} (set CDI_UPSTREAM_GIT)` },
  () => {
    const upstream = upstreamCrds();
    const problems: string[] = [];
    for (const crd of crds()) {
      const spec = crd.spec as { names: { kind: string }; scope: string; versions: Schema[] };
      const kind = spec.names.kind;
      const theirs = upstream.get(kind) as { spec: typeof spec } | undefined;
      if (!theirs) {
        problems.push(`${kind}: upstream has no such CRD`);
        continue;
      }
      if (canon(spec.names) !== canon(theirs.spec.names)) problems.push(`${kind}: names differ`);
      if (spec.scope !== theirs.spec.scope) problems.push(`${kind}: scope differs`);
      // Upstream's CDI CRD also serves v1alpha1, removed on upgrade; we serve v1beta1 only (ADR 0011).
      const ours = spec.versions[0] as Schema;
      const v1beta1 = theirs.spec.versions.find((v) => v.name === 'v1beta1');
      assert.ok(v1beta1, `${kind}: upstream serves v1beta1`);
      const strip = (cols: unknown): string =>
        canon((cols as Schema[] | undefined)?.map(({ description: _d, ...rest }) => rest));
      if (strip(ours.additionalPrinterColumns) !== strip(v1beta1.additionalPrinterColumns))
        problems.push(`${kind}: printer columns differ`);
      // `subresources: {}` (as upstream writes for CDI and DataImportCron) is no subresource at all
      const sub = (s: unknown): string => (s === undefined || canon(s) === '{}' ? 'none' : canon(s));
      if (sub(ours.subresources) !== sub(v1beta1.subresources)) problems.push(`${kind}: subresources differ`);
      // upstream's operator marks ObjectTransfer deprecated when it installs the CRD (object-transfer.go)
      const deprecated = (v1beta1.deprecated as boolean | undefined) ?? kind === 'ObjectTransfer';
      if ((ours.deprecated ?? false) !== deprecated) problems.push(`${kind}: deprecation differs`);
      const schema = (v: Schema): Schema => (v.schema as { openAPIV3Schema: Schema }).openAPIV3Schema;
      diff(schema(ours), schema(v1beta1), kind, problems);
    }
    const shipped = new Set(crds().map((c) => (c.spec as { names: { kind: string } }).names.kind));
    // the forklift.cdi.kubevirt.io populators are not part of this project
    const missing = [...upstream.keys()].filter((k) => !shipped.has(k) && !/VolumePopulator$/.test(k));
    assert.deepEqual(missing, [], 'upstream kinds we do not ship');
    assert.deepEqual(problems, []);
  },
);
