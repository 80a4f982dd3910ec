/**
 * `/datavolume-validate` (upstream pkg/apiserver/webhooks/datavolume-validate.go, util.go): the DataVolume spec
 * rules of cdi-upstream.md §1.2, with upstream's messages:
 * - name at most 253 characters; the spec is immutable (except the checkpoints of a multi-stage import);
 * - exactly one of pvc/storage; a size > 0 and ≥ 1 MiB, which may be left out only for a clone (`storage` with a
 *   pvc or snapshot source, or a sourceRef: the controller takes the source's size); access modes;
 * - exactly one source, or a sourceRef (kind DataSource, with a name), or external population
 *   (dataSource/dataSourceRef), never two of these;
 * - clone sources name a namespace and a name (a missing source is waited for by the controller, not refused here);
 * - content types, and per import source: URLs, checksum format, registry URL/imageStream/pullMethod, imageio and
 *   vddk required fields;
 * - on create, a PVC of the same name must not exist, unless it is populated for this DataVolume or may be adopted
 *   (`cdi.kubevirt.io/allowClaimAdoption`, else the DataVolumeClaimAdoption feature gate), or is owned by a
 *   DataVolume.
 */
import { Ann } from '../../api/constants.ts';
import type { DataVolume, DataVolumeSource, DataVolumeSpec } from '../../api/datavolume.ts';
import { parseDataVolume, ParseError } from '../../api/parse.ts';
import { parseByteSize } from '../../api/quantity.ts';
import { parseChecksum } from '../../importer/checksum.ts';
import { Resources, type KubeClient, type KubeObject } from '../../kube/index.ts';
import { allowed, denied, errored, type AdmissionRequest, type Admitter } from '../admission.ts';

export const DataVolumeValidatePath = '/datavolume-validate';

interface Cause {
  field: string;
  message: string;
  reason?: string;
}

const invalid = (field: string, message: string): Cause[] => [
  { field, message, reason: 'FieldValueInvalid' },
];

const ACCESS_MODES = ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'];
const MODES_TEXT = '"ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"';
const MiB = 1n << 20n;

function isClone(spec: DataVolumeSpec): boolean {
  return (
    spec.sourceRef !== undefined || spec.source?.pvc !== undefined || spec.source?.snapshot !== undefined
  );
}

function validateStorageSize(spec: DataVolumeSpec): Cause[] {
  const name = spec.pvc ? 'PVC' : 'Storage';
  const res = spec.pvc ? spec.pvc.resources : spec.storage?.resources;
  const text = res?.requests?.['storage'];
  const field = `spec.${name}.resources.requests.size`;
  if (text === undefined) {
    if (!spec.storage || !isClone(spec)) return invalid(field, `${name} size is missing`);
    return [];
  }
  let bytes: bigint;
  try {
    bytes = parseByteSize(String(text));
  } catch {
    return invalid(field, `${name} size "${String(text)}" is not a quantity`);
  }
  if (bytes <= 0n) return invalid(field, `${name} size can't be equal or less than zero`);
  if (bytes < MiB) return invalid(field, `${name} size should be at least 1MiB`);
  return [];
}

function sourceUrl(url: string | undefined): string {
  if (!url) return 'source URL is empty';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `Invalid source URL: ${url}`;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:' && u.protocol !== 'gs:')
    return `Invalid source URL scheme: ${url}`;
  return '';
}

function checkUrl(url: string | undefined, kind: string): Cause[] {
  const e = sourceUrl(url);
  return e ? invalid(`spec.source.${kind}.url`, `spec.source ${e}`) : [];
}

function validateRegistry(
  reg: NonNullable<DataVolumeSource['registry']>,
  contentType: string | undefined,
): Cause[] {
  if (contentType && contentType !== 'kubevirt')
    return invalid('spec.contentType', 'ContentType must be kubevirt when Source is Registry');
  const field = 'spec.source.Registry';
  if ((reg.url === undefined) === (reg.imageStream === undefined))
    return invalid(field, 'Source registry should have either URL or ImageStream');
  if (reg.url !== undefined) {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(reg.url)?.[1]?.toLowerCase();
    if (scheme === undefined) return invalid(`${field}.URL`, `Illegal registry source URL ${reg.url}`);
    if (scheme !== 'docker' && scheme !== 'oci-archive')
      return invalid(`${field}.URL`, `Illegal registry source URL scheme ${reg.url}`);
  }
  const method = reg.pullMethod;
  if (method !== undefined && method !== 'pod' && method !== 'node')
    return invalid(`${field}.importMethod`, `ImportMethod ${method} is neither pod, node or ""`);
  if (reg.imageStream === '')
    return invalid(`${field}.importMethod`, 'Source registry ImageStream is not valid');
  if (reg.imageStream !== undefined && method !== 'node') {
    return invalid(
      `${field}.importMethod`,
      'Source registry ImageStream is supported only with node pull import method',
    );
  }
  return [];
}

function validateSource(spec: DataVolumeSpec): Cause[] {
  const s = spec.source!;
  const set = Object.entries(s).filter(([, v]) => v !== undefined && v !== null);
  if (set.length === 0) return invalid('spec.source', 'Missing Data volume source');
  if (set.length > 1) return invalid('spec.source', 'Multiple Data volume sources');
  const ct = spec.contentType;
  if (ct && ct !== 'kubevirt' && ct !== 'archive')
    return invalid('spec.contentType', 'ContentType not one of: kubevirt, archive');
  if (s.http) {
    const c = checkUrl(s.http.url, 'HTTP');
    if (s.http.checksum) {
      try {
        parseChecksum(s.http.checksum);
      } catch (e) {
        c.push(...invalid('spec.source.HTTP.checksum', `Invalid checksum format: ${(e as Error).message}`));
      }
    }
    if (c.length) return c;
  }
  if (s.s3) {
    const c = checkUrl(s.s3.url, 'S3');
    if (c.length) return c;
  }
  if (s.gcs) {
    const c = checkUrl(s.gcs.url, 'GCS');
    if (c.length) return c;
  }
  if (s.blank && ct === 'archive')
    return invalid('spec.contentType', 'SourceType cannot be blank and the contentType be archive');
  if (s.registry) {
    const c = validateRegistry(s.registry, ct);
    if (c.length) return c;
  }
  if (s.imageio) {
    const f = 'spec.source.Imageio';
    if (!s.imageio.secretRef || !s.imageio.diskId) return invalid(f, `${f} source Imageio is not valid`);
    if (!s.imageio.certConfigMap && s.imageio.insecureSkipVerify !== true)
      return invalid(f, `${f} source Imageio requires CertConfigMap or InsecureSkipVerify`);
    const c = checkUrl(s.imageio.url, 'ImageIO');
    if (c.length) return c;
  }
  if (s.vddk) {
    const f = 'spec.source.VDDK';
    if (!s.vddk.secretRef || !s.vddk.uuid || !s.vddk.backingFile || !s.vddk.thumbprint)
      return invalid(f, `${f} source VDDK is not valid`);
    const c = checkUrl(s.vddk.url, 'VDDK');
    if (c.length) return c;
  }
  if (s.pvc && (!s.pvc.namespace || !s.pvc.name))
    return invalid('spec.source.PVC', 'spec.source.PVC source PVC is not valid');
  if (s.snapshot && (!s.snapshot.namespace || !s.snapshot.name))
    return invalid('spec.source.Snapshot', 'spec.source.Snapshot source snapshot is not valid');
  return [];
}

interface Ref {
  apiGroup?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

function validateExternalPopulation(
  spec: DataVolumeSpec,
  ds: Ref | undefined,
  dsr: Ref | undefined,
): Cause[] {
  const causes: Cause[] = [];
  if (spec.source || spec.sourceRef)
    causes.push(...invalid('spec.source', 'External population is incompatible with Source and SourceRef'));
  if (ds && dsr && !sameJson(ds, dsr)) causes.push(...invalid('', 'DataSourceRef and DataSource must match'));
  const check = (r: Ref, what: string, field: string): void => {
    if (what === 'DataSourceRef' && r.namespace)
      causes.push(...invalid(`${field}.namespace`, 'Invalid value: DataSourceRef namespace not supported'));
    if (!r.name) causes.push(...invalid(`${field}.name`, `Required value: ${what} name`));
    if (!r.kind) causes.push(...invalid(`${field}.kind`, `Required value: ${what} kind`));
    if (!r.apiGroup && r.kind !== 'PersistentVolumeClaim') {
      causes.push(
        ...invalid(
          `${field}.apiGroup`,
          `Required value: ${what} apiGroup when kind is not 'PersistentVolumeClaim'`,
        ),
      );
    }
  };
  if (ds) check(ds, 'DataSource', 'spec.dataSource');
  if (dsr) check(dsr, 'DataSourceRef', 'spec.dataSourceRef');
  return causes;
}

/** The spec rules (upstream validateDataVolumeSpec), first failure wins as upstream. */
export function validateDataVolumeSpec(spec: DataVolumeSpec): Cause[] {
  if (!spec.pvc && !spec.storage) return invalid('spec.PVC', 'Missing Data volume PVC');
  if (spec.pvc && spec.storage)
    return invalid(
      'spec.PVC.Storage',
      'Duplicate storage definition, both target storage and target pvc defined',
    );
  const size = validateStorageSize(spec);
  if (size.length) return size;
  const sc = spec.pvc ? spec.pvc.storageClassName : spec.storage?.storageClassName;
  if (sc && sc.length > 253) return invalid('', 'Name cannot be longer than 253 characters');
  let ds: Ref | undefined;
  let dsr: Ref | undefined;
  if (spec.pvc) {
    ds = spec.pvc.dataSource;
    dsr = spec.pvc.dataSourceRef;
    const modes = spec.pvc.accessModes ?? [];
    if (modes.length === 0)
      return invalid('spec.PVC.accessModes', 'Required value: at least 1 access mode is required');
    if (modes.length > 1) return invalid('spec.PVC.accessModes', 'PVC multiple accessModes');
    if (!ACCESS_MODES.includes(modes[0]!))
      return invalid(
        'spec.PVC.accessModes',
        `Unsupported value: "${modes[0]}": supported values: ${MODES_TEXT}`,
      );
  } else {
    ds = spec.storage!.dataSource;
    dsr = spec.storage!.dataSourceRef;
    for (const m of spec.storage!.accessModes ?? []) {
      if (!ACCESS_MODES.includes(m))
        return invalid('spec.PVC.accessModes', `Unsupported value: "${m}": supported values: ${MODES_TEXT}`);
    }
  }
  if (ds || dsr) return validateExternalPopulation(spec, ds, dsr);
  if ((spec.source === undefined) === (spec.sourceRef === undefined)) {
    return invalid(
      'spec.source',
      'Data volume should have either Source or SourceRef, or be externally populated',
    );
  }
  if (spec.sourceRef) {
    const ref = spec.sourceRef;
    if (!ref.kind) return invalid('spec.sourceRef.Kind', 'Missing sourceRef kind');
    if (ref.kind !== 'DataSource')
      return invalid(
        'spec.sourceRef.Kind',
        `Unsupported sourceRef kind ${ref.kind}, currently only DataSource is supported`,
      );
    if (!ref.name) return invalid('spec.sourceRef.Name', 'Missing sourceRef name');
    return [];
  }
  return validateSource(spec);
}

/** JSON equality that ignores key order (Semantic.DeepEqual for what a spec holds). */
export function sameJson(a: unknown, b: unknown): boolean {
  const norm = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(norm);
    if (v && typeof v === 'object') {
      return Object.fromEntries(
        Object.entries(v as Record<string, unknown>)
          .filter(([, x]) => x !== undefined)
          .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
          .map(([k, x]) => [k, norm(x)]),
      );
    }
    return v;
  };
  return JSON.stringify(norm(a)) === JSON.stringify(norm(b));
}

function specChangeAllowed(dv: DataVolume, old: DataVolume): boolean {
  if (sameJson(dv.spec, old.spec)) return true;
  const multiStage =
    dv.spec.source !== undefined &&
    (dv.spec.checkpoints?.length ?? 0) > 0 &&
    (dv.spec.source.vddk !== undefined || dv.spec.source.imageio !== undefined);
  if (!multiStage) return false;
  const strip = (s: DataVolumeSpec): DataVolumeSpec => ({
    ...s,
    checkpoints: undefined,
    finalCheckpoint: undefined,
  });
  return sameJson(strip(dv.spec), strip(old.spec));
}

interface Claim extends KubeObject {
  metadata: KubeObject['metadata'] & {
    ownerReferences?: { kind: string; controller?: boolean; uid?: string }[];
  };
}

/** May the PVC of this name exist before the DataVolume (upstream ClaimMayExistBeforeDataVolume)? */
async function claimMayExist(kube: KubeClient, pvc: Claim, dv: DataVolume): Promise<boolean> {
  const pa = pvc.metadata?.annotations ?? {};
  if (pa[Ann.PopulatedFor] === dv.metadata?.name) return true;
  if (pa[Ann.CreatedForDataVolume] !== undefined && pa[Ann.CreatedForDataVolume] === dv.metadata?.uid)
    return false;
  const adopt = dv.metadata?.annotations?.[Ann.AllowClaimAdoption];
  if (adopt !== undefined) return ['1', 't', 'T', 'true', 'TRUE', 'True'].includes(adopt);
  const config = await kube.getOrUndefined<KubeObject & { spec?: { featureGates?: string[] } }>(
    Resources.CDIConfig,
    'config',
  );
  return config?.spec?.featureGates?.includes('DataVolumeClaimAdoption') ?? false;
}

export function dataVolumeValidate(deps: { kube: KubeClient }): Admitter {
  return async (r: AdmissionRequest) => {
    if (r.resource.group !== 'cdi.kubevirt.io' || r.resource.resource !== 'datavolumes') {
      return errored(`expected the resource datavolumes.cdi.kubevirt.io, got ${r.resource.resource}`);
    }
    let dv: DataVolume;
    try {
      dv = parseDataVolume(r.object);
    } catch (e) {
      if (e instanceof ParseError) return errored(e.message);
      throw e;
    }
    if (r.operation === 'UPDATE') {
      let old: DataVolume;
      try {
        old = parseDataVolume(r.oldObject);
      } catch (e) {
        if (e instanceof ParseError) return errored(e.message);
        throw e;
      }
      if (!specChangeAllowed(dv, old)) {
        return denied([
          {
            field: 'DataVolume.Spec',
            message: 'Cannot update DataVolume Spec',
            reason: 'FieldValueDuplicate',
          },
        ]);
      }
    }
    const name = dv.metadata?.name ?? r.name ?? '';
    if (name.length > 253) return denied(invalid('', 'Name cannot be longer than 253 characters'));
    if (r.operation === 'CREATE') {
      const ns = dv.metadata?.namespace || r.namespace || '';
      const pvc = await deps.kube.getOrUndefined<Claim>(Resources.PersistentVolumeClaim, name, ns);
      if (pvc && !(await claimMayExist(deps.kube, pvc, dv))) {
        const owner = pvc.metadata?.ownerReferences?.find((o) => o.controller);
        if (!owner || owner.kind !== 'DataVolume') {
          return denied([
            {
              field: 'DataVolume.Name',
              message: `Destination PVC ${ns}/${name} already exists`,
              reason: 'FieldValueDuplicate',
            },
          ]);
        }
      }
    }
    const causes = validateDataVolumeSpec(dv.spec);
    return causes.length > 0 ? denied(causes) : allowed();
  };
}
