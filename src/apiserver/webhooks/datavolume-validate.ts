/**
 * /datavolume-validate (upstream pkg/apiserver/webhooks/datavolume-validate.go, util.go): the rules of a DataVolume's
 * spec the schema cannot say, with upstream's messages and field paths (its capitalisation included: clients match
 * on them), checked in upstream's order, the first failing group answering:
 *
 *   - the name at most 253 characters; on create, no claim of that name unless the DataVolume may adopt it
 *     (claim adoption gate or annotation, a populated or static claim, or one a DataVolume owns)
 *   - exactly one of pvc/storage; a size > 0 and at least 1MiB (storage may leave it out for a clone or sourceRef)
 *   - access modes: pvc exactly one, storage any number, each a known mode
 *   - external population (dataSource/dataSourceRef) excludes source and sourceRef
 *   - exactly one of source and sourceRef; sourceRef only of kind DataSource, with a name
 *   - exactly one source; contentType kubevirt or archive; blank and registry not archive
 *   - http/s3/gcs/imageio/vddk URLs http(s) (or gs); the checksum algorithm:hash well formed (http as upstream;
 *     s3, gcs and registry, which have a checksum only here, with the same message)
 *   - registry: url or imageStream (not both), docker:// or oci-archive://, imageStream needs pullMethod node
 *   - imageio needs secretRef, diskId and certConfigMap or insecureSkipVerify; vddk secretRef, uuid, backingFile,
 *     thumbprint; pvc and snapshot clones a namespace and a name
 *   - on update the spec is immutable, except checkpoints of a multi-stage (imageio, vddk) import
 */
import { isDeepStrictEqual } from 'node:util';
import { Ann } from '../../api/constants.ts';
import type { DataVolume, DataVolumeSpec } from '../../api/datavolume.ts';
import { parseQuantity } from '../../api/quantity.ts';
import { controllerOf, Resources, type KubeClient, type KubeObject } from '../../kube/index.ts';
import { allowed, denied, errored, type AdmissionRequest, type AdmissionResponse } from '../admission.ts';

interface Cause {
  field?: string;
  message: string;
  reason?: string;
}

const invalid = (message: string, field: string): Cause[] => [
  { message, field, reason: 'FieldValueInvalid' },
];

const MiB = 1n << 20n;
const DNS1123SubdomainMaxLength = 253;
/** A DataImportCron's and a populator source's name: a DNS-1035 label. */
export const DNS1035LabelMaxLength = 63;
const AccessModes = ['ReadWriteOnce', 'ReadOnlyMany', 'ReadWriteMany', 'ReadWriteOncePod'];
const unsupportedMode = (m: string): string =>
  `Unsupported value: "${m}": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"`;

type Storage = {
  accessModes?: string[];
  resources?: { requests?: Record<string, string | number> };
  storageClassName?: string;
  dataSource?: Ref;
  dataSourceRef?: Ref & { namespace?: string };
};
type Ref = { apiGroup?: string; kind?: string; name?: string };

/** upstream validateNameLength (a DataVolume's name: a DNS-1123 subdomain; a DataImportCron's or a populator source's: a label). */
export function nameLength(name: string | undefined, max = DNS1123SubdomainMaxLength): Cause | undefined {
  return (name ?? '').length > max
    ? { message: `Name cannot be longer than ${max} characters`, field: '', reason: 'FieldValueInvalid' }
    : undefined;
}

function storageSize(spec: DataVolumeSpec, f: string): Cause[] | undefined {
  const name = spec.pvc ? 'PVC' : 'Storage';
  const res = ((spec.pvc ?? spec.storage) as Storage | undefined)?.resources;
  const isClone = !!spec.sourceRef || !!spec.source?.pvc || !!spec.source?.snapshot;
  const field = `${f}.${name}.resources.requests.size`;
  const req = res?.requests?.['storage'];
  if (req === undefined) {
    if (!spec.storage || !isClone) return invalid(`${name} size is missing`, field);
    return undefined;
  }
  let size: bigint;
  try {
    size = parseQuantity(req);
  } catch {
    return invalid(`${name} size can't be equal or less than zero`, field);
  }
  if (size <= 0n) return invalid(`${name} size can't be equal or less than zero`, field);
  // KubeVirt refuses disks under 1MiB
  if (size < MiB) return invalid(`${name} size should be at least 1MiB`, field);
  return undefined;
}

function dataSourceCauses(
  ref: Ref,
  field: string,
  what: 'DataSource' | 'DataSourceRef',
  namespaced: boolean,
): Cause[] {
  const out: Cause[] = [];
  if (namespaced && (ref as { namespace?: string }).namespace)
    out.push({
      message: `Invalid value: ${what} namespace not supported`,
      field: `${field}.namespace.`,
      reason: 'FieldValueInvalid',
    });
  if (!ref.name)
    out.push({
      message: `Required value: ${what} name`,
      field: `${field}.name.`,
      reason: 'FieldValueInvalid',
    });
  if (!ref.kind)
    out.push({
      message: `Required value: ${what} kind`,
      field: `${field}.kind`,
      reason: 'FieldValueInvalid',
    });
  if (!ref.apiGroup && ref.kind !== 'PersistentVolumeClaim')
    out.push({
      message: `Required value: ${what} apiGroup when kind is not 'PersistentVolumeClaim'`,
      field: `${field}.apiGroup.`,
      reason: 'FieldValueInvalid',
    });
  return out;
}

function externalPopulation(
  spec: DataVolumeSpec,
  f: string,
  ds: Ref | undefined,
  dsr: Ref | undefined,
): Cause[] {
  const out: Cause[] = [];
  if (spec.source || spec.sourceRef)
    out.push(...invalid('External population is incompatible with Source and SourceRef', `${f}.source`));
  if (ds && dsr) {
    const norm = (r: Ref & { namespace?: string }): Ref => ({
      apiGroup: r.apiGroup ?? '',
      kind: r.kind ?? '',
      name: r.name ?? '',
    });
    if (!isDeepStrictEqual(norm(ds), norm(dsr)) || (dsr as { namespace?: string }).namespace)
      out.push(...invalid('DataSourceRef and DataSource must match', ''));
  }
  if (ds) out.push(...dataSourceCauses(ds, `${f}.dataSource`, 'DataSource', false));
  if (dsr) out.push(...dataSourceCauses(dsr, `${f}.dataSourceRef`, 'DataSourceRef', true));
  return out;
}

/** upstream validateSourceURL: an absolute http, https or gs URL. */
function sourceUrlError(url: string | undefined): string | undefined {
  if (!url) return 'source URL is empty';
  let scheme: string;
  try {
    scheme = new URL(url).protocol.replace(/:$/, '');
  } catch {
    if (!url.startsWith('/')) return `Invalid source URL: ${url}`;
    scheme = '';
  }
  if (scheme !== 'http' && scheme !== 'https' && scheme !== 'gs') return `Invalid source URL scheme: ${url}`;
  return undefined;
}

function checkUrl(url: string | undefined, sourceType: string, f: string): Cause[] | undefined {
  const e = sourceUrlError(url);
  return e ? invalid(`${f}.source ${e}`, `${f}.source.${sourceType}.url`) : undefined;
}

/** upstream's http checksum rule (`Invalid checksum format: …`), for every source that has a checksum. */
function checksumCauses(sum: string | undefined, sourceType: string, f: string): Cause[] {
  const e = sum ? checksumError(sum) : undefined;
  return e ? invalid(`Invalid checksum format: ${e}`, `${f}.source.${sourceType}.checksum`) : [];
}

const Hash: Record<string, number> = { md5: 32, sha1: 40, sha256: 64, sha512: 128 };

/** upstream checksum.ParseAndValidate */
export function checksumError(s: string): string | undefined {
  const i = s.indexOf(':');
  if (i < 0) return `invalid checksum format: expected 'algorithm:hash', got '${s}'`;
  const algorithm = s.slice(0, i).trim().toLowerCase();
  const hash = s
    .slice(i + 1)
    .trim()
    .toLowerCase();
  if (hash === '') return 'checksum hash value cannot be empty';
  const len = Hash[algorithm];
  if (len === undefined)
    return `unsupported hash algorithm '${algorithm}': supported algorithms are: md5, sha1, sha256, sha512`;
  if (hash.length !== len)
    return `invalid ${algorithm} hash length: expected ${len} hex characters, got ${hash.length}`;
  const bad = /[^0-9a-f]/.exec(hash)?.[0];
  if (bad !== undefined) {
    // Go's %#U of the first byte that is not hex
    const cp = bad.codePointAt(0) ?? 0;
    return `checksum hash is not valid hexadecimal: encoding/hex: invalid byte: U+${cp.toString(16).toUpperCase().padStart(4, '0')} '${bad}'`;
  }
  return undefined;
}

function registryCauses(
  reg: NonNullable<NonNullable<DataVolumeSpec['source']>['registry']>,
  f: string,
): Cause[] | undefined {
  const url = reg.url;
  const is = reg.imageStream;
  if ((url === undefined && is === undefined) || (url !== undefined && is !== undefined))
    return invalid('Source registry should have either URL or ImageStream', `${f}.source.Registry`);
  if (url !== undefined) {
    let scheme = '';
    try {
      scheme = new URL(url).protocol.replace(/:$/, '');
    } catch {
      scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase() ?? '';
    }
    if (scheme !== 'docker' && scheme !== 'oci-archive')
      return invalid(`Illegal registry source URL scheme ${url}`, `${f}.source.Registry.URL`);
  }
  const method = reg.pullMethod;
  if (method !== undefined && method !== 'pod' && method !== 'node')
    return invalid(`ImportMethod ${method} is neither pod, node or ""`, `${f}.source.Registry.importMethod`);
  if (is !== undefined && is === '')
    return invalid('Source registry ImageStream is not valid', `${f}.source.Registry.importMethod`);
  if (is !== undefined && method !== 'node')
    return invalid(
      'Source registry ImageStream is supported only with node pull import method',
      `${f}.source.Registry.importMethod`,
    );
  return undefined;
}

/** How many sources are set (upstream validateNumberOfSources counts the non-nil fields). */
export const sourceCount = (src: object): number =>
  Object.values(src).filter((v) => v !== undefined && v !== null).length;

/** upstream validateContentType: empty (kubevirt), kubevirt or archive. */
export function contentTypeCauses(contentType: string | undefined, f: string): Cause[] | undefined {
  const ct = contentType ?? '';
  return ct !== '' && ct !== 'kubevirt' && ct !== 'archive'
    ? invalid('ContentType not one of: kubevirt, archive', `${f}.contentType`)
    : undefined;
}

/**
 * The source's rules (upstream validateNumberOfSources and the validate*Source functions); `kind` names it in the
 * count messages ("Data volume", or "VolumeImport" for a VolumeImportSource, which has the same source shape).
 */
export function sourceCauses(
  spec: Pick<DataVolumeSpec, 'source' | 'contentType'>,
  f: string,
  kind = 'Data volume',
): Cause[] {
  const src = spec.source ?? {};
  const n = sourceCount(src);
  if (n === 0) return invalid(`Missing ${kind} source`, `${f}.source`);
  if (n > 1) return invalid(`Multiple ${kind} sources`, `${f}.source`);
  const ctCauses = contentTypeCauses(spec.contentType, f);
  if (ctCauses) return ctCauses;
  const ct = spec.contentType ?? '';
  if (src.http) {
    const c = [...(checkUrl(src.http.url, 'HTTP', f) ?? []), ...checksumCauses(src.http.checksum, 'HTTP', f)];
    if (c.length) return c;
  }
  // s3, gcs and registry checksums are ours (upstream: http only), refused with http's message
  if (src.s3) {
    const c = [...(checkUrl(src.s3.url, 'S3', f) ?? []), ...checksumCauses(src.s3.checksum, 'S3', f)];
    if (c.length) return c;
  }
  if (src.gcs) {
    const c = [...(checkUrl(src.gcs.url, 'GCS', f) ?? []), ...checksumCauses(src.gcs.checksum, 'GCS', f)];
    if (c.length) return c;
  }
  if (src.blank && ct === 'archive')
    return invalid('SourceType cannot be blank and the contentType be archive', `${f}.contentType`);
  if (src.registry) {
    if (ct !== '' && ct !== 'kubevirt')
      return invalid('ContentType must be kubevirt when Source is Registry', `${f}.contentType`);
    const c = registryCauses(src.registry, f) ?? checksumCauses(src.registry.checksum, 'Registry', f);
    if (c.length) return c;
  }
  if (src.imageio) {
    const io = src.imageio;
    if (!io.secretRef || !io.diskId)
      return invalid(`${f}.source.Imageio source Imageio is not valid`, `${f}.source.Imageio`);
    if (!io.certConfigMap && !io.insecureSkipVerify)
      return invalid(
        `${f}.source.Imageio source Imageio requires CertConfigMap or InsecureSkipVerify`,
        `${f}.source.Imageio`,
      );
    const c = checkUrl(io.url, 'ImageIO', f);
    if (c) return c;
  }
  if (src.vddk) {
    const v = src.vddk;
    if (!v.secretRef || !v.uuid || !v.backingFile || !v.thumbprint)
      return invalid(`${f}.source.VDDK source VDDK is not valid`, `${f}.source.VDDK`);
    const c = checkUrl(v.url, 'VDDK', f);
    if (c) return c;
  }
  if (src.pvc && (!src.pvc.namespace || !src.pvc.name))
    return invalid(`${f}.source.PVC source PVC is not valid`, `${f}.source.PVC`);
  if (src.snapshot && (!src.snapshot.namespace || !src.snapshot.name))
    return invalid(`${f}.source.Snapshot source snapshot is not valid`, `${f}.source.Snapshot`);
  return [];
}

/** upstream validateDataVolumeSpec: the first failing group of rules, or none. */
export function validateDataVolumeSpec(spec: DataVolumeSpec, f = 'spec'): Cause[] {
  if (!spec.pvc && !spec.storage) return invalid('Missing Data volume PVC', `${f}.PVC`);
  if (spec.pvc && spec.storage)
    return invalid(
      'Duplicate storage definition, both target storage and target pvc defined',
      `${f}.PVC.Storage`,
    );
  const size = storageSize(spec, f);
  if (size) return size;
  const st = (spec.pvc ?? spec.storage) as Storage;
  if (st.storageClassName) {
    const c = nameLength(st.storageClassName);
    if (c) return [c];
  }
  const modes = st.accessModes ?? [];
  if (spec.pvc) {
    if (modes.length === 0)
      return invalid('Required value: at least 1 access mode is required', `${f}.PVC.accessModes`);
    if (modes.length > 1) return invalid('PVC multiple accessModes', `${f}.PVC.accessModes`);
  }
  // as upstream, the message names the first mode
  if (modes.some((m) => !AccessModes.includes(m)))
    return invalid(unsupportedMode(modes[0] ?? ''), `${f}.PVC.accessModes`);
  if (st.dataSource || st.dataSourceRef) return externalPopulation(spec, f, st.dataSource, st.dataSourceRef);
  if ((!spec.source && !spec.sourceRef) || (spec.source && spec.sourceRef))
    return invalid(
      'Data volume should have either Source or SourceRef, or be externally populated',
      `${f}.source`,
    );
  if (spec.sourceRef) {
    const r = spec.sourceRef;
    if (!r.kind) return invalid('Missing sourceRef kind', `${f}.sourceRef.Kind`);
    if (r.kind !== 'DataSource')
      return invalid(
        `Unsupported sourceRef kind ${r.kind}, currently only DataSource is supported`,
        `${f}.sourceRef.Kind`,
      );
    if (!r.name) return invalid('Missing sourceRef name', `${f}.sourceRef.Name`);
    return [];
  }
  return sourceCauses(spec, f);
}

/** upstream: only checkpoints (and finalCheckpoint) of a multi-stage imageio/vddk import may change. */
/** A spec with the fields a multi-stage (warm) import has: a DataVolume's or a VolumeImportSource's. */
interface MultiStageSpec {
  source?: { vddk?: unknown; imageio?: unknown } | undefined;
  checkpoints?: unknown[] | undefined;
  finalCheckpoint?: boolean | undefined;
}

/** upstream isMultiStageImport: checkpoints on a vddk or imageio source. */
export const isMultiStageSpec = (spec: MultiStageSpec): boolean =>
  !!spec.source && (spec.checkpoints?.length ?? 0) > 0 && (!!spec.source.vddk || !!spec.source.imageio);

/**
 * upstream's update rule for DataVolumes and VolumeImportSources: the spec is immutable, except that a multi-stage
 * (vddk or imageio with checkpoints) import may change its checkpoints and finalCheckpoint: that is how it advances.
 */
export function specChangeAllowed<T extends MultiStageSpec>(spec: T, old: T): boolean {
  if (isDeepStrictEqual(spec, old)) return true;
  if (!isMultiStageSpec(spec)) return false;
  const strip = ({
    checkpoints: _c,
    finalCheckpoint: _f,
    ...rest
  }: T): Omit<T, 'checkpoints' | 'finalCheckpoint'> => rest;
  return isDeepStrictEqual(strip(spec), strip(old));
}

const truthy = (v: string | undefined): boolean | undefined =>
  v === undefined ? undefined : ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v);

export interface DataVolumeValidateDeps {
  kube: KubeClient;
}

type PvcView = KubeObject;

/** upstream ClaimMayExistBeforeDataVolume: a populated claim, or adoption allowed (annotation, else the gate). */
async function mayAdopt(kube: KubeClient, pvc: PvcView, dv: DataVolume): Promise<boolean> {
  const pa = pvc.metadata?.annotations ?? {};
  if (pa[Ann.PopulatedFor] === dv.metadata?.name) return true;
  if (pa[Ann.CreatedForDataVolume] !== undefined && pa[Ann.CreatedForDataVolume] === dv.metadata?.uid)
    return false;
  const ann = truthy(dv.metadata?.annotations?.[Ann.AllowClaimAdoption]);
  if (ann !== undefined) return ann;
  const config = await kube.getOrUndefined<KubeObject & { spec?: { featureGates?: string[] } }>(
    Resources.CDIConfig,
    'config',
  );
  return config?.spec?.featureGates?.includes('DataVolumeClaimAdoption') ?? false;
}

export function dataVolumeValidate(d: DataVolumeValidateDeps) {
  return async (req: AdmissionRequest): Promise<AdmissionResponse> => {
    if (req.resource.group !== 'cdi.kubevirt.io' || req.resource.resource !== 'datavolumes')
      return errored(`expect resource to be '{cdi.kubevirt.io v1beta1 datavolumes}'`);
    const dv = req.object as DataVolume | undefined;
    if (!dv?.spec) return errored('the AdmissionReview has no DataVolume object');
    if (req.operation === 'UPDATE') {
      const old = req.oldObject as DataVolume | undefined;
      if (old?.spec && !specChangeAllowed(dv.spec, old.spec))
        return denied([
          {
            message: 'Cannot update DataVolume Spec',
            field: 'DataVolume.Spec',
            reason: 'FieldValueDuplicate',
          },
        ]);
    }
    const long = nameLength(dv.metadata?.name);
    if (long) return denied([long]);
    if (req.operation === 'CREATE') {
      const ns = dv.metadata?.namespace ?? req.namespace ?? '';
      const pvc = await d.kube.getOrUndefined<PvcView>(
        Resources.PersistentVolumeClaim,
        dv.metadata?.name ?? '',
        ns,
      );
      if (pvc && !(await mayAdopt(d.kube, pvc, dv))) {
        const owner = controllerOf(pvc);
        if (!owner || owner.kind !== 'DataVolume')
          return denied([
            {
              message: `Destination PVC ${ns}/${pvc.metadata?.name ?? ''} already exists`,
              field: 'DataVolume.Name',
              reason: 'FieldValueDuplicate',
            },
          ]);
      }
    }
    const causes = validateDataVolumeSpec(dv.spec);
    return causes.length ? denied(causes) : allowed();
  };
}
