// Which DataVolume sources this build serves, and the checks upstream's validating webhook makes on a DataVolume
// (pkg/apiserver/webhooks/datavolume-validate.go, util.go). cdi-apiserver's webhook refuses these at admission; the
// controller makes the same checks for DataVolumes that reached it anyway (the webhook not registered yet, or
// failurePolicy bypassed) and says what is wrong in the DataVolume's conditions and events.
//
// SourceController is the one list of sources: each is served by the controller named there ("not supported yet"
// while a kind has none). `sourceRef` has none of its own: both reconcilers resolve it through the DataSource first
// (sourceref.ts), and what it resolves to is served. `external` is a DataVolume with no source whose claim names a
// populator in dataSourceRef/dataSource (upstream's external-population controller).
import { Phase } from '../shared/constants.ts';
import type { DataVolume } from '../shared/types.ts';
import { isMultiStage } from '../shared/checkpoints.ts';

export const SourceKinds = [
  'http',
  's3',
  'gcs',
  'registry',
  'pvc',
  'upload',
  'blank',
  'imageio',
  'vddk',
  'snapshot',
] as const;
export type SourceKind = (typeof SourceKinds)[number] | 'sourceRef' | 'external';

/** The DataVolume controller that serves each source; undefined: not supported yet. */
export const SourceController: Record<SourceKind, 'import' | 'upload' | 'clone' | undefined> = {
  http: 'import',
  blank: 'import',
  s3: 'import',
  gcs: 'import',
  registry: 'import',
  imageio: 'import',
  vddk: 'import',
  pvc: 'clone',
  snapshot: 'clone',
  upload: 'upload',
  sourceRef: undefined,
  external: 'import',
};

export const InvalidReason = {
  /** The spec is one upstream's webhook refuses. */
  invalid: 'ErrInvalidDataVolume',
  /** A valid source this build does not serve yet. */
  unsupported: 'UnsupportedSource',
} as const;

export type SourceCheck =
  { ok: true; kind: SourceKind } | { ok: false; kind?: SourceKind; reason: string; message: string };

const invalid = (message: string, kind?: SourceKind): SourceCheck => ({
  ok: false,
  ...(kind ? { kind } : {}),
  reason: InvalidReason.invalid,
  message,
});

/** upstream validateSourceURL, for the schemes the source can fetch. */
function checkUrl(url: string | undefined, schemes: readonly string[]): string | undefined {
  if (!url) return 'spec.source source URL is empty';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `spec.source Invalid source URL: ${url}`;
  }
  if (!schemes.includes(u.protocol.replace(/:$/, '')))
    return `spec.source Invalid source URL scheme: ${url} (use ${schemes.join(' or ')})`;
  return undefined;
}

/** upstream validateRegistrySource, in its words. */
function checkRegistry(
  r: NonNullable<NonNullable<DataVolume['spec']['source']>['registry']>,
  contentType: string | undefined,
): string | undefined {
  if (contentType !== undefined && contentType !== 'kubevirt')
    return 'ContentType must be kubevirt when Source is Registry';
  if ((r.url === undefined) === (r.imageStream === undefined))
    return 'Source registry should have either URL or ImageStream';
  if (r.url !== undefined) {
    let u: URL;
    try {
      u = new URL(r.url);
    } catch {
      return `Illegal registry source URL ${r.url}`;
    }
    if (u.protocol !== 'docker:' && u.protocol !== 'oci-archive:')
      return `Illegal registry source URL scheme ${r.url} (use docker:// or oci-archive://)`;
  }
  const method = r.pullMethod;
  if (method !== undefined && method !== '' && method !== 'pod' && method !== 'node')
    return `ImportMethod ${method} is neither pod, node or ""`;
  if (r.imageStream === '') return 'Source registry ImageStream is not valid';
  if (r.imageStream !== undefined && method !== 'node')
    return 'Source registry ImageStream is supported only with node pull import method';
  return undefined;
}

/** The source of a DataVolume, or what is wrong with it, in upstream's words where upstream has them. */
export function checkSource(dv: DataVolume): SourceCheck {
  const spec = dv.spec ?? {};
  const src = spec.source;
  const hasRef = spec.sourceRef !== undefined;
  const external = Boolean(
    spec.pvc?.dataSourceRef ??
    spec.pvc?.dataSource ??
    spec.storage?.dataSourceRef ??
    spec.storage?.dataSource,
  );
  if (external) {
    if (src || hasRef) return invalid('External population is incompatible with Source and SourceRef');
    return { ok: true, kind: 'external' };
  }
  if (!src && !hasRef)
    return invalid('Data volume should have either Source or SourceRef, or be externally populated');
  if (src && hasRef)
    return invalid('Data volume should have either Source or SourceRef, or be externally populated');
  if (spec.pvc && spec.storage)
    return invalid('Duplicate storage definition, both target storage and target pvc defined');
  if (spec.contentType !== undefined && spec.contentType !== 'kubevirt' && spec.contentType !== 'archive')
    return invalid('ContentType not one of: kubevirt, archive');
  let kind: SourceKind;
  if (hasRef) kind = 'sourceRef';
  else {
    const set = SourceKinds.filter((k) => src?.[k] !== undefined && src[k] !== null);
    if (set.length === 0) return invalid('Missing Data volume source');
    if (set.length > 1) return invalid(`Multiple Data volume sources (${set.join(', ')}): set exactly one`);
    kind = set[0]!;
  }
  if (kind === 'http') {
    const problem = checkUrl(src?.http?.url, ['http', 'https']);
    if (problem) return invalid(problem, kind);
  }
  if (kind === 's3') {
    // upstream's webhook takes http(s) only; s3://bucket/key (AWS, or the controller's AWS_ENDPOINT_URL_S3) too
    const problem = checkUrl(src?.s3?.url, ['http', 'https', 's3']);
    if (problem) return invalid(problem, kind);
  }
  if (kind === 'gcs') {
    const problem = checkUrl(src?.gcs?.url, ['http', 'https', 'gs']);
    if (problem) return invalid(problem, kind);
  }
  if (kind === 'registry') {
    const problem = checkRegistry(src?.registry ?? {}, spec.contentType);
    if (problem) return invalid(problem, kind);
  }
  if (kind === 'imageio') {
    // upstream validateImageIOSource
    const i = src?.imageio;
    if (!i?.secretRef || !i.diskId) return invalid('spec.source.Imageio source Imageio is not valid', kind);
    if (!i.certConfigMap && i.insecureSkipVerify !== true)
      return invalid('spec.source.Imageio source Imageio requires CertConfigMap or InsecureSkipVerify', kind);
    const problem = checkUrl(i.url, ['http', 'https']);
    if (problem) return invalid(problem, kind);
  }
  if (kind === 'vddk') {
    // upstream validateVDDKSource
    const v = src?.vddk;
    if (!v?.secretRef || !v.uuid || !v.backingFile || !v.thumbprint)
      return invalid(
        'spec.source.VDDK source VDDK is not valid (secretRef, uuid, backingFile and thumbprint are required)',
        kind,
      );
    const problem = checkUrl(v.url, ['http', 'https']);
    if (problem) return invalid(problem, kind);
  }
  if (kind === 'blank' && spec.contentType === 'archive')
    return invalid('SourceType cannot be blank and the contentType be archive', kind);
  if (!SourceController[kind])
    return {
      ok: false,
      kind,
      reason: InvalidReason.unsupported,
      message: `the ${kind} source is not supported yet`,
    };
  return { ok: true, kind };
}

/**
 * upstream's webhook refuses any change to a DataVolume's spec after creation ("Cannot update DataVolume Spec"). The
 * API server counts spec changes in metadata.generation; a DataVolume whose PVC was made from an earlier spec keeps
 * that PVC and gets this notice instead.
 */
export function specEditNotice(dv: DataVolume): { reason: string; message: string } | undefined {
  if ((dv.metadata.generation ?? 1) <= 1) return undefined;
  // upstream lets a multi-stage import's checkpoints and finalCheckpoint be edited: that is how it advances
  if (isMultiStage(dv)) return undefined;
  return {
    reason: InvalidReason.invalid,
    message:
      'Cannot update DataVolume Spec: the change was not applied (its PVC was made from the spec as created); delete and recreate the DataVolume to use the new spec',
  };
}

/** The phase a DataVolume shows while its spec is refused: it waits for the user. */
export const RefusedPhase = Phase.Pending;
